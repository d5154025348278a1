package e2e

import (
	"context"
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
		if os.Getenv(helperEnv) != "" {
			return m.Run() // a helper of TestSSOLogin, in a namespace
		}
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
var tools = []string{"ip", "nft", "ssh", "ssh-keygen", "ssh-keyscan", "/usr/sbin/sshd", "curl", "dig", "ping", "dnsmasq", "python3", "setpriv", "haproxy"}

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
	*netlab.LAN
	bigSum string
}

const (
	httpPort = netlab.HTTPPort
	lanName  = netlab.LANName
)

// startLANServices starts sshd, an HTTP server and a DNS server on
// lanhost, with keys and content made for this run.
func startLANServices(t *testing.T, lab *netlab.Lab) *lanServices {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lan, err := lab.StartLAN(ctx, dir, 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	return &lanServices{LAN: lan, bigSum: lan.BigSum}
}

// ssh runs a command on lanhost over plain OpenSSH from the role's
// namespace: no ProxyCommand, no ssh config, just the address.
func (s *lanServices) ssh(ctx context.Context, lab *netlab.Lab, from string, command ...string) (string, error) {
	return lab.Output(ctx, from, "ssh", s.SSHArgs(command...)...)
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
