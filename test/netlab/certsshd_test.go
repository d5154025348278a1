package netlab

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCertSSHD checks the certificate-only sshd with certificates that
// ssh-keygen signs, from an account that exists only in the connector's
// namespace (which reaches lanhost directly): a certificate of the trusted
// CA with the principal an account accepts logs in as it; the same
// certificate as root or as another account, an expired one, one of
// another CA and a bare key are refused; and the host knows none of the
// accounts.
func TestCertSSHD(t *testing.T) {
	if err := Available(); err != nil {
		t.Skipf("skipping the netns sshd test: %v", err)
	}
	for _, tool := range []string{"ssh", "ssh-keygen", "ssh-keyscan", "/usr/sbin/sshd", "setpriv"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipping the netns sshd test: %s is not installed (run make deps)", tool)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l, err := New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var op Account
	t.Cleanup(func() {
		if t.Failed() {
			l.DumpOutputs(t)
		}
		if err := l.Close(); err != nil {
			t.Error(err)
		}
		for _, role := range []string{Conn, LANHost} {
			if _, err := os.Stat(filepath.Join(netnsEtc, l.NS(role))); err == nil {
				t.Errorf("/etc/netns/%s is left after Close", l.NS(role))
			}
		}
		if op.Home != "" {
			if _, err := os.Stat(filepath.Dir(op.Home)); err == nil {
				t.Errorf("the accounts' homes %s are left after Close", filepath.Dir(op.Home))
			}
		}
	})
	dir := t.TempDir()
	keygen := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ssh-keygen", args...).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	ca, otherCA := filepath.Join(dir, "ca"), filepath.Join(dir, "other-ca")
	keygen("-q", "-t", "ed25519", "-N", "", "-C", "ca", "-f", ca)
	keygen("-q", "-t", "ed25519", "-N", "", "-C", "other", "-f", otherCA)
	caPub, err := os.ReadFile(ca + ".pub")
	if err != nil {
		t.Fatal(err)
	}

	accts, err := l.AddAccounts(Conn, "operator")
	if err != nil {
		t.Fatal(err)
	}
	op = accts[0]
	s, err := l.StartCertSSHD(ctx, CertSSHDConfig{
		CAKeys:     string(caPub),
		Principals: map[string][]string{"ec2-user": {"ec2-user"}, "deploy": {"deploy", "admins"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Accounts) != 2 || s.Accounts[0].Name != "deploy" || s.Accounts[1].Name != "ec2-user" {
		t.Fatalf("accounts %+v, want deploy and ec2-user", s.Accounts)
	}
	if out, err := l.OutputAs(ctx, Conn, op, nil, "sh", "-c", "id -un; echo $HOME; umask 077; mkdir -p ~/.ssh && cat > ~/.ssh/known_hosts <<EOF\n"+s.KnownHosts()+"EOF"); err != nil || out != "operator\n"+op.Home+"\n" {
		t.Fatalf("running as the account in the connector's namespace: %q, %v", out, err)
	}
	// ssh-keygen runs as the account and writes its key in its home.
	key := filepath.Join(op.Home, ".ssh", "id_ed25519")
	if out, err := l.OutputAs(ctx, Conn, op, nil, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key); err != nil {
		t.Fatalf("ssh-keygen as the account: %v\n%s", err, out)
	}
	sign := func(signer, principals, validity string) {
		t.Helper()
		keygen("-q", "-s", signer, "-I", "alice@example.com", "-n", principals, "-V", validity, key+".pub")
	}
	ssh := func(login string) (string, error) {
		return l.OutputAs(ctx, Conn, op, nil, "ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
			login+"@"+LANHostIP, "id", "-un")
	}
	// refused checks that ssh as login is refused and, unless logged is
	// empty, that sshd logs why (within 2 s: its log is copied while the
	// client exits).
	refused := func(login, why, logged string) {
		t.Helper()
		before := len(s.Proc.Output())
		out, err := ssh(login)
		if err == nil || !strings.Contains(err.Error(), "Permission denied (publickey)") {
			t.Errorf("%s: ssh %s: %q, %v; want Permission denied (publickey)", why, login, out, err)
		}
		for deadline := time.Now().Add(2 * time.Second); logged != "" && !strings.Contains(s.Proc.Output()[before:], logged); {
			if time.Now().After(deadline) {
				t.Errorf("%s: sshd did not log %q", why, logged)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	refused("ec2-user", "a bare key", "")
	sign(ca, "ec2-user", "-5m:+1h")
	if out, err := ssh("ec2-user"); err != nil || out != "ec2-user\n" {
		t.Errorf("ssh ec2-user with a certificate for ec2-user: %q, %v", out, err)
	}
	if !strings.Contains(s.Proc.Output(), "ID alice@example.com") {
		t.Errorf("sshd's log does not name the certificate's key ID")
	}
	refused("root", "root", "Certificate does not contain an authorized principal")
	refused("deploy", "another account", "Certificate does not contain an authorized principal")
	sign(ca, "admins", "-5m:+1h")
	if out, err := ssh("deploy"); err != nil || out != "deploy\n" {
		t.Errorf("ssh deploy with a certificate for admins: %q, %v", out, err)
	}
	refused("ec2-user", "a principal of another account", "Certificate does not contain an authorized principal")
	sign(ca, "ec2-user", "-10m:-1m")
	refused("ec2-user", "an expired certificate", "Certificate invalid: expired")
	sign(otherCA, "ec2-user", "-5m:+1h")
	fp, err := exec.Command("ssh-keygen", "-l", "-f", otherCA+".pub").Output()
	if err != nil || len(strings.Fields(string(fp))) < 2 {
		t.Fatalf("ssh-keygen -l: %q, %v", fp, err)
	}
	refused("ec2-user", "another CA", "ID alice@example.com (serial 0) CA ED25519 "+strings.Fields(string(fp))[1])
	if out, err := exec.Command("getent", "passwd", "operator").CombinedOutput(); err == nil && strings.Contains(string(out), op.Home) {
		t.Errorf("the host knows the lab's account: %s", out)
	}
}
