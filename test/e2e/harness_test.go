package e2e

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrennet/warren/test/netlab"
)

// warrenBin is the binary under test, built once by TestMain.
var warrenBin string

func TestMain(m *testing.M) {
	code := func() int {
		if netlab.Available() != nil {
			return m.Run() // tests skip with the reason
		}
		dir, err := os.MkdirTemp("", "warren-e2e-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		os.Chmod(dir, 0o755)
		warrenBin = filepath.Join(dir, "warren")
		if out, err := exec.Command("go", "build", "-o", warrenBin, "../../cmd/warren").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building warren: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// tools are the programs the e2e tests drive; make deps installs them.
var tools = []string{"ip", "nft", "ssh", "ssh-keygen", "/usr/sbin/sshd", "curl", "dig", "ping", "dnsmasq", "python3", "setpriv"}

// needLab skips unless the topology can be built, and builds it.
func needLab(t *testing.T) *netlab.Lab {
	t.Helper()
	if err := netlab.Available(); err != nil {
		t.Skipf("skipping end-to-end test: %v", err)
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipping end-to-end test: %s is not installed (run make deps)", tool)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lab, err := netlab.New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			lab.DumpOutputs(t)
		}
		if err := lab.Close(); err != nil {
			t.Error(err)
		}
	})
	return lab
}

// eventually retries f until it succeeds or d passes.
func eventually(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %v: %v", what, d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// lanServices are the real servers on lanhost.
type lanServices struct {
	dir     string
	sshKey  string
	bigSum  string
	bigPath string
}

const (
	httpPort = "8080"
	lanName  = "lanhost.corp"
)

// startLANServices starts sshd, an HTTP server and a DNS server on
// lanhost, with keys and content made for this run.
func startLANServices(t *testing.T, lab *netlab.Lab) *lanServices {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	s := &lanServices{dir: dir, sshKey: filepath.Join(dir, "id_ed25519")}
	for _, args := range [][]string{
		{"-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "host_ed25519")},
		{"-q", "-t", "ed25519", "-N", "", "-f", s.sshKey},
	} {
		if out, err := exec.Command("ssh-keygen", args...).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v: %s", err, out)
		}
	}
	pub, err := os.ReadFile(s.sshKey + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "authorized_keys"), string(pub))
	write(t, filepath.Join(dir, "sshd_config"), fmt.Sprintf(`ListenAddress %s:22
HostKey %s/host_ed25519
AuthorizedKeysFile %s/authorized_keys
PidFile none
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
`, netlab.LANHostIP, dir, dir))
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	www := filepath.Join(dir, "www")
	os.MkdirAll(www, 0o755)
	write(t, filepath.Join(www, "index.html"), "hello from lanhost\n")
	s.bigPath = filepath.Join(www, "big.bin")
	s.bigSum = writeRandom(t, s.bigPath, 64<<20)

	for _, svc := range [][]string{
		{"/usr/sbin/sshd", "-D", "-e", "-f", filepath.Join(dir, "sshd_config")},
		{"python3", "-m", "http.server", httpPort, "--bind", netlab.LANHostIP, "--directory", www},
		{"dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--bind-interfaces",
			"--listen-address=" + netlab.LANHostIP, "--address=/" + lanName + "/" + netlab.LANHostIP,
			"--user=root", "--pid-file=" + filepath.Join(dir, "dnsmasq.pid"), "--log-facility=-"},
	} {
		if _, err := lab.Start(netlab.LANHost, svc[0], svc[1:]...); err != nil {
			t.Fatal(err)
		}
	}
	// The services answer locally before any test relies on them.
	ctx := context.Background()
	eventually(t, 10*time.Second, "lanhost services up", func() error {
		if err := lab.Run(ctx, netlab.LANHost, "curl", "-sf", "--max-time", "2", "http://"+netlab.LANHostIP+":"+httpPort+"/"); err != nil {
			return err
		}
		if _, err := lab.Output(ctx, netlab.LANHost, "dig", "+short", "+time=1", "+tries=1", "@"+netlab.LANHostIP, lanName); err != nil {
			return err
		}
		_, err := s.ssh(ctx, lab, netlab.LANHost, "true")
		return err
	})
	return s
}

// ssh runs a command on lanhost over plain OpenSSH from the role's
// namespace: no ProxyCommand, no ssh config, just the address.
func (s *lanServices) ssh(ctx context.Context, lab *netlab.Lab, from string, command ...string) (string, error) {
	args := []string{"-F", "/dev/null", "-i", s.sshKey, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR", "root@" + netlab.LANHostIP}
	return lab.Output(ctx, from, "ssh", append(args, command...)...)
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeRandom writes n random bytes to path and returns their SHA-256.
func writeRandom(t *testing.T, path string, n int) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for range n / len(buf) {
		rand.Read(buf)
		h.Write(buf)
		if _, err := f.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

func fileSum(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// warren runs the warren binary in the role's namespace.
func warren(ctx context.Context, lab *netlab.Lab, role string, args ...string) (string, error) {
	out, err := lab.Output(ctx, role, warrenBin, args...)
	return strings.TrimSpace(out), err
}
