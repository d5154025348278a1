package netlab

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// LAN services on lanhost: real sshd, an HTTP server and a DNS server.
const (
	HTTPPort = "8080"
	LANName  = "lanhost.corp" // dnsmasq answers it with LANHostIP
)

// LAN describes the services StartLAN started.
type LAN struct {
	Dir string
	// SSHKey is the private key root@lanhost accepts.
	SSHKey string
	// BigFile is served as /big.bin; BigSum is its SHA-256 in hex.
	BigFile string
	BigSum  string
}

// StartLAN starts sshd, an HTTP server (python3 -m http.server) and
// dnsmasq on lanhost, with keys and content made in dir, and waits until
// they answer on the site LAN. bigSize is the size of /big.bin.
func (l *Lab) StartLAN(ctx context.Context, dir string, bigSize int) (*LAN, error) {
	lan := &LAN{Dir: dir, SSHKey: filepath.Join(dir, "id_ed25519")}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	for _, args := range [][]string{
		{"-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "host_ed25519")},
		{"-q", "-t", "ed25519", "-N", "", "-f", lan.SSHKey},
	} {
		if out, err := exec.CommandContext(ctx, "ssh-keygen", args...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("ssh-keygen: %v: %s", err, out)
		}
	}
	pub, err := os.ReadFile(lan.SSHKey + ".pub")
	if err != nil {
		return nil, err
	}
	config := fmt.Sprintf(`ListenAddress %s:22
ListenAddress %s:22
HostKey %s/host_ed25519
AuthorizedKeysFile %s/authorized_keys
PidFile none
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
`, LANHostIP, LAN2HostIP, dir, dir)
	www := filepath.Join(dir, "www")
	lan.BigFile = filepath.Join(www, "big.bin")
	for _, f := range []struct {
		path, content string
	}{
		{filepath.Join(dir, "authorized_keys"), string(pub)},
		{filepath.Join(dir, "sshd_config"), config},
		{filepath.Join(www, "index.html"), "hello from lanhost\n"},
	} {
		if err := os.MkdirAll(filepath.Dir(f.path), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(f.path, []byte(f.content), 0o644); err != nil {
			return nil, err
		}
	}
	if lan.BigSum, err = writeRandom(lan.BigFile, bigSize); err != nil {
		return nil, err
	}
	// sshd wants its privilege-separation directory.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return nil, err
	}
	for _, svc := range [][]string{
		{"/usr/sbin/sshd", "-D", "-e", "-f", filepath.Join(dir, "sshd_config")},
		{"python3", "-m", "http.server", HTTPPort, "--bind", "0.0.0.0", "--directory", www},
		{"dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--bind-interfaces",
			"--listen-address=" + LANHostIP, "--address=/" + LANName + "/" + LANHostIP,
			"--user=root", "--pid-file=" + filepath.Join(dir, "dnsmasq.pid"), "--log-facility=-"},
	} {
		if _, err := l.Start(LANHost, svc[0], svc[1:]...); err != nil {
			return nil, err
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := l.Run(ctx, Conn, "curl", "-sf", "--max-time", "2", "http://"+LANHostIP+":"+HTTPPort+"/")
		if err == nil {
			_, err = l.Output(ctx, Conn, "dig", "+short", "+time=1", "+tries=1", "@"+LANHostIP, LANName)
		}
		if err == nil {
			_, err = l.Output(ctx, Conn, "ssh", lan.SSHArgs("true")...)
		}
		if err == nil {
			return lan, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("lanhost services not answering after 15s: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// SSHArgs are the arguments of a plain OpenSSH command running command on
// lanhost as root: the address, a key, and no ProxyCommand or config.
func (lan *LAN) SSHArgs(command ...string) []string { return lan.SSHArgsTo(LANHostIP, command...) }

// SSHArgsTo is SSHArgs for another of lanhost's addresses.
func (lan *LAN) SSHArgsTo(host string, command ...string) []string {
	args := []string{"-F", "/dev/null", "-i", lan.SSHKey, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR", "root@" + host}
	return append(args, command...)
}

// writeRandom writes n random bytes to path and returns their SHA-256.
func writeRandom(path string, n int) (string, error) {
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for left := n; left > 0; left -= len(buf) {
		chunk := buf[:min(len(buf), left)]
		rand.Read(chunk)
		h.Write(chunk)
		if _, err := f.Write(chunk); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), f.Close()
}
