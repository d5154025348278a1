package netlab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// CertSSHD is a real sshd on lanhost (LANHostIP:22) that admits
// certificates and nothing else: it trusts the user CA keys it was given
// (TrustedUserCAKeys), lets an account in only with a certificate carrying
// one of the principals listed for that account (AuthorizedPrincipalsFile,
// one file per account), and has no authorized keys (AuthorizedKeysFile
// none) and no passwords. It listens where StartLAN's sshd does: a lab
// runs one or the other.
type CertSSHD struct {
	Dir string
	// HostKey is the server's public host key ("ssh-ed25519 AAAA…"), for
	// the known_hosts file of whoever logs in.
	HostKey string
	// Accounts are lanhost's accounts, one per key of Principals, in
	// sorted order (they exist only in lanhost's namespace: AddAccounts).
	Accounts []Account
	Proc     *Proc
}

// CertSSHDConfig is what a CertSSHD trusts.
type CertSSHDConfig struct {
	// CAKeys are the lines of the TrustedUserCAKeys file ("ssh-ed25519
	// AAAA…"), as `warren ssh-ca` prints them.
	CAKeys string
	// Principals maps each UNIX account to make on lanhost to the
	// certificate principals it accepts (its AuthorizedPrincipalsFile).
	// An account not named here, root among them, has no such file, so
	// no certificate logs in as it.
	Principals map[string][]string
}

// StartCertSSHD makes the accounts, writes the configuration, host key
// and principals files in a directory of the lab's (sshd reads a
// principals file as the account logging in, so it must be reachable by
// every account: Close removes it), starts sshd on lanhost and waits until
// it answers on the site LAN with its host key. Close stops it.
func (l *Lab) StartCertSSHD(ctx context.Context, cfg CertSSHDConfig) (*CertSSHD, error) {
	if strings.TrimSpace(cfg.CAKeys) == "" {
		return nil, errors.New("no CA key to trust")
	}
	dir, err := l.sharedDir("sshd")
	if err != nil {
		return nil, err
	}
	s := &CertSSHD{Dir: dir}
	hostKey := filepath.Join(dir, "host_ed25519")
	if out, err := exec.CommandContext(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hostKey).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ssh-keygen: %v: %s", err, out)
	}
	pub, err := os.ReadFile(hostKey + ".pub")
	if err != nil {
		return nil, err
	}
	f := strings.Fields(string(pub))
	if len(f) < 2 {
		return nil, fmt.Errorf("host key %q", pub)
	}
	s.HostKey = f[0] + " " + f[1]
	names := make([]string, 0, len(cfg.Principals))
	for name := range cfg.Principals {
		names = append(names, name)
	}
	slices.Sort(names)
	if s.Accounts, err = l.AddAccounts(LANHost, names...); err != nil {
		return nil, err
	}
	principals := filepath.Join(dir, "principals")
	if err := os.Mkdir(principals, 0o755); err != nil {
		return nil, err
	}
	for name, ps := range cfg.Principals {
		if err := os.WriteFile(filepath.Join(principals, name), []byte(strings.Join(ps, "\n")+"\n"), 0o644); err != nil {
			return nil, err
		}
	}
	caFile := filepath.Join(dir, "trusted_user_ca_keys")
	if err := os.WriteFile(caFile, []byte(strings.TrimSpace(cfg.CAKeys)+"\n"), 0o644); err != nil {
		return nil, err
	}
	// StrictModes no: the files live under /tmp, which is world-writable,
	// and sshd would refuse a principals file below it. Everything else
	// is as a server that trusts only the CA would have it; LogLevel
	// VERBOSE makes sshd log each certificate's key ID, serial and CA.
	config := fmt.Sprintf(`ListenAddress %s:22
HostKey %s
PidFile none
UsePAM no
StrictModes no
LogLevel VERBOSE
PubkeyAuthentication yes
AuthenticationMethods publickey
AuthorizedKeysFile none
TrustedUserCAKeys %s
AuthorizedPrincipalsFile %s/%%u
PasswordAuthentication no
KbdInteractiveAuthentication no
`, LANHostIP, hostKey, caFile, principals)
	configFile := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(configFile, []byte(config), 0o644); err != nil {
		return nil, err
	}
	// sshd wants its privilege-separation directory.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return nil, err
	}
	if out, err := l.Output(ctx, LANHost, "/usr/sbin/sshd", "-t", "-f", configFile); err != nil {
		return nil, fmt.Errorf("sshd -t: %w\n%s", err, out)
	}
	if s.Proc, err = l.Start(LANHost, "/usr/sbin/sshd", "-D", "-e", "-f", configFile); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, err := l.Output(ctx, Conn, "ssh-keyscan", "-T", "2", "-t", "ed25519", LANHostIP)
		if err == nil && strings.Contains(out, s.HostKey) {
			return s, nil
		}
		if exited, werr := s.Proc.Exited(); exited {
			return nil, fmt.Errorf("sshd exited: %v\n%s", werr, s.Proc.Output())
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("sshd on lanhost not answering after 15s: %q, %v\n%s", out, err, s.Proc.Output())
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// KnownHosts is a known_hosts line for the server at LANHostIP.
func (s *CertSSHD) KnownHosts() string { return LANHostIP + " " + s.HostKey + "\n" }
