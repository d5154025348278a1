package sshca_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"

	"github.com/warrennet/warren/overlay/coord/sshca"
	"github.com/warrennet/warren/overlay/wire"
)

// clock is a fake clock tests move by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock {
	return &clock{now: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func open(t *testing.T, dir string, clk *clock) *sshca.CA {
	t.Helper()
	ca, err := sshca.Open(dir, clk.Now)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return ca
}

func userKey(t *testing.T) (ssh.Signer, ssh.PublicKey) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s, s.PublicKey()
}

// trusted parses the TrustedUserCAKeys lines of keys, as sshd does.
func trusted(t *testing.T, keys []wire.SSHCAKey) []ssh.PublicKey {
	t.Helper()
	var out []ssh.PublicKey
	for _, k := range keys {
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k.PublicKey))
		if err != nil {
			t.Fatalf("CA key line %q: %v", k.PublicKey, err)
		}
		if got := ssh.FingerprintSHA256(pub); got != k.Fingerprint {
			t.Errorf("CA key line's fingerprint %s, listed as %s", got, k.Fingerprint)
		}
		out = append(out, pub)
	}
	return out
}

// connMeta is the part of an SSH connection a CertChecker reads.
type connMeta struct{ user string }

func (m connMeta) User() string          { return m.user }
func (m connMeta) SessionID() []byte     { return nil }
func (m connMeta) ClientVersion() []byte { return nil }
func (m connMeta) ServerVersion() []byte { return nil }
func (m connMeta) RemoteAddr() net.Addr  { return &net.TCPAddr{} }
func (m connMeta) LocalAddr() net.Addr   { return &net.TCPAddr{} }

// authenticate is sshd's decision on a user certificate: the signer is a
// trusted CA, the login user one of its principals, now within its
// validity.
func authenticate(cas []ssh.PublicKey, user string, cert *ssh.Certificate, now time.Time) error {
	checker := &ssh.CertChecker{
		IsUserAuthority: func(auth ssh.PublicKey) bool {
			for _, ca := range cas {
				if bytes.Equal(ca.Marshal(), auth.Marshal()) {
					return true
				}
			}
			return false
		},
		Clock: func() time.Time { return now },
	}
	_, err := checker.Authenticate(connMeta{user}, cert)
	return err
}

// reparse writes cert as ID-cert.pub holds it and reads it back.
func reparse(t *testing.T, cert *ssh.Certificate) *ssh.Certificate {
	t.Helper()
	pub, _, _, _, err := ssh.ParseAuthorizedKey(ssh.MarshalAuthorizedKey(cert))
	if err != nil {
		t.Fatalf("parsing the certificate: %v", err)
	}
	c, ok := pub.(*ssh.Certificate)
	if !ok {
		t.Fatalf("parsed a %T, want a certificate", pub)
	}
	return c
}

func TestSignVerifies(t *testing.T) {
	clk := newClock()
	ca := open(t, t.TempDir(), clk)
	other := open(t, t.TempDir(), clk)
	_, pub := userKey(t)
	now := clk.Now()
	after, before := now.Add(-5*time.Minute), now.Add(time.Hour)
	signed, fp, err := ca.Sign(pub, "alice@example.com", []string{"alice", "deploy"}, after, before, 7)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	cert := reparse(t, signed)
	keys := ca.Keys(now)
	if len(keys) != 1 || keys[0].Fingerprint != fp || keys[0].State != wire.SSHCASigning {
		t.Fatalf("Keys = %+v, want one signing key %s", keys, fp)
	}
	got := struct {
		Type       uint32
		KeyID      string
		Principals []string
		After      time.Time
		Before     time.Time
		Serial     uint64
		Ext        map[string]string
		Critical   map[string]string
		Key        string
	}{cert.CertType, cert.KeyId, cert.ValidPrincipals, time.Unix(int64(cert.ValidAfter), 0).UTC(), time.Unix(int64(cert.ValidBefore), 0).UTC(),
		cert.Serial, cert.Extensions, cert.CriticalOptions, ssh.FingerprintSHA256(cert.Key)}
	want := got
	want.Type, want.KeyID, want.Principals, want.After, want.Before, want.Serial = ssh.UserCert, "alice@example.com", []string{"alice", "deploy"}, after, before, 7
	want.Ext = map[string]string{"permit-X11-forwarding": "", "permit-agent-forwarding": "", "permit-port-forwarding": "", "permit-pty": "", "permit-user-rc": ""}
	want.Critical, want.Key = nil, ssh.FingerprintSHA256(pub)
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b map[string]string) bool { return fmt.Sprint(a) == fmt.Sprint(b) })); diff != "" {
		t.Errorf("certificate (-want +got):\n%s", diff)
	}
	if got := ssh.FingerprintSHA256(cert.SignatureKey); got != fp {
		t.Errorf("signed by %s, Sign says %s", got, fp)
	}

	cas := trusted(t, keys)
	for _, tt := range []struct {
		name string
		cas  []ssh.PublicKey
		user string
		at   time.Time
		want string // "" for accepted
	}{
		{"principal alice", cas, "alice", now, ""},
		{"principal deploy", cas, "deploy", now, ""},
		{"just after valid-after", cas, "alice", after, ""},
		{"not a principal", cas, "root", now, "not in the set of valid principals"},
		{"before valid-after", cas, "alice", after.Add(-time.Second), "not yet valid"},
		{"at valid-before", cas, "alice", before, "expired"},
		{"untrusted CA", trusted(t, other.Keys(now)), "alice", now, "certificate signed by unrecognized authority"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := authenticate(tt.cas, tt.user, cert, tt.at)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("got %v, want an error holding %q", err, tt.want)
			}
		})
	}
}

// TestSSHHandshake logs in over a real SSH handshake (x/crypto/ssh on
// both ends) with a certificate the CA signed, as sshd with
// TrustedUserCAKeys would check it.
func TestSSHHandshake(t *testing.T) {
	clk := newClock()
	ca := open(t, t.TempDir(), clk)
	userSigner, pub := userKey(t)
	now := time.Now()
	cert, _, err := ca.Sign(pub, "alice@example.com", []string{"alice"}, now.Add(-5*time.Minute), now.Add(time.Hour), 1)
	if err != nil {
		t.Fatal(err)
	}
	certSigner, err := ssh.NewCertSigner(cert, userSigner)
	if err != nil {
		t.Fatal(err)
	}
	cas := trusted(t, ca.Keys(clk.Now()))
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	hostSigner, _ := ssh.NewSignerFromKey(hostPriv)
	for _, tt := range []struct {
		user string
		ok   bool
	}{{"alice", true}, {"root", false}} {
		t.Run(tt.user, func(t *testing.T) {
			checker := &ssh.CertChecker{IsUserAuthority: func(auth ssh.PublicKey) bool {
				return bytes.Equal(auth.Marshal(), cas[0].Marshal())
			}}
			scfg := &ssh.ServerConfig{PublicKeyCallback: checker.Authenticate}
			scfg.AddHostKey(hostSigner)
			cc, sc := tcpPair(t)
			done := make(chan error, 1)
			go func() {
				conn, _, _, err := ssh.NewServerConn(sc, scfg)
				if err == nil {
					conn.Close()
				}
				sc.Close()
				done <- err
			}()
			ccfg := &ssh.ClientConfig{User: tt.user, Auth: []ssh.AuthMethod{ssh.PublicKeys(certSigner)},
				HostKeyCallback: ssh.FixedHostKey(hostSigner.PublicKey()), Timeout: 10 * time.Second}
			conn, _, _, err := ssh.NewClientConn(cc, "pipe", ccfg)
			if err == nil {
				conn.Close()
			}
			cc.Close()
			serr := <-done
			if (err == nil) != tt.ok {
				t.Errorf("login as %s: client %v, server %v; want ok=%v", tt.user, err, serr, tt.ok)
			}
		})
	}
}

// tcpPair is two ends of a loopback TCP connection (net.Pipe is
// unbuffered: both SSH ends write their version first and would block).
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return cc, sc
}

func TestSignRefuses(t *testing.T) {
	clk := newClock()
	ca := open(t, t.TempDir(), clk)
	_, pub := userKey(t)
	now := clk.Now()
	cert, _, err := ca.Sign(pub, "a@example.com", []string{"a"}, now, now.Add(time.Hour), 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name       string
		pub        ssh.PublicKey
		principals []string
		before     time.Time
		want       string
	}{
		{"no principals", pub, nil, now.Add(time.Hour), "no principals"},
		{"bad principal", pub, []string{"root;rm"}, now.Add(time.Hour), "not a UNIX user name"},
		{"empty validity", pub, []string{"a"}, now, "is empty"},
		{"certificate as key", cert, []string{"a"}, now.Add(time.Hour), "certificate, not a public key"},
		{"no key", nil, []string{"a"}, now.Add(time.Hour), "no SSH public key"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ca.Sign(tt.pub, "a@example.com", tt.principals, now, tt.before, 2)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Sign = %v, want an error holding %q", err, tt.want)
			}
		})
	}
}

func TestSSHKeygenReadsCertificate(t *testing.T) {
	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Skip("ssh-keygen is not installed")
	}
	clk := newClock()
	ca := open(t, t.TempDir(), clk)
	_, pub := userKey(t)
	after := time.Date(2026, 12, 5, 11, 55, 0, 0, time.UTC)
	before := time.Date(2026, 12, 5, 13, 0, 0, 0, time.UTC)
	cert, fp, err := ca.Sign(pub, "alice@example.com", []string{"alice", "deploy"}, after, before, 42)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "id_ed25519-cert.pub")
	if err := os.WriteFile(path, ssh.MarshalAuthorizedKey(cert), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(keygen, "-L", "-f", path)
	cmd.Env = []string{"TZ=UTC", "LC_ALL=C"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen -L: %v\n%s", err, out)
	}
	t.Logf("ssh-keygen -L -f %s:\n%s", filepath.Base(path), out)
	var lines []string
	for l := range strings.Lines(string(out)) {
		lines = append(lines, strings.TrimSpace(l))
	}
	text := strings.Join(lines, "\n")
	for _, want := range []string{
		"Type: ssh-ed25519-cert-v01@openssh.com user certificate",
		"Public key: ED25519-CERT " + ssh.FingerprintSHA256(pub),
		"Signing CA: ED25519 " + fp + " (using ssh-ed25519)",
		`Key ID: "alice@example.com"`,
		"Serial: 42",
		"Valid: from 2026-12-05T11:55:00 to 2026-12-05T13:00:00",
		"Principals:\nalice\ndeploy\nCritical Options: (none)",
		"Extensions:\npermit-X11-forwarding\npermit-agent-forwarding\npermit-port-forwarding\npermit-pty\npermit-user-rc",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("ssh-keygen -L does not say %q", want)
		}
	}
}

// TestRotation walks a rotation with a fake clock: the new key is listed
// at once and signs after the overlap; the old one signs until then, is
// listed until its last certificate expires, then dropped.
func TestRotation(t *testing.T) {
	const overlap, maxValidity = 24 * time.Hour, 8 * time.Hour
	clk := newClock()
	dir := t.TempDir()
	ca := open(t, dir, clk)
	start := clk.Now()
	first := ca.Keys(start)[0].Fingerprint
	keys, err := ca.Rotate(overlap, maxValidity)
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	if len(keys) != 2 {
		t.Fatalf("after Rotate, %d keys listed, want 2", len(keys))
	}
	second := keys[1].Fingerprint
	switchAt := start.Add(overlap)
	retires := switchAt.Add(maxValidity)

	type st struct{ FP, State string }
	_, pub := userKey(t)
	for _, step := range []struct {
		at     time.Time
		want   []st
		signer string
	}{
		{start, []st{{first, wire.SSHCASigning}, {second, wire.SSHCANext}}, first},
		{switchAt.Add(-time.Second), []st{{first, wire.SSHCASigning}, {second, wire.SSHCANext}}, first},
		{switchAt, []st{{first, wire.SSHCARetiring}, {second, wire.SSHCASigning}}, second},
		{retires.Add(-time.Second), []st{{first, wire.SSHCARetiring}, {second, wire.SSHCASigning}}, second},
		{retires, []st{{second, wire.SSHCASigning}}, second},
	} {
		clk.mu.Lock()
		clk.now = step.at
		clk.mu.Unlock()
		var got []st
		for _, k := range ca.Keys(step.at) {
			got = append(got, st{k.Fingerprint, k.State})
		}
		if diff := cmp.Diff(step.want, got); diff != "" {
			t.Errorf("at start+%v, keys (-want +got):\n%s", step.at.Sub(start), diff)
		}
		_, fp, err := ca.Sign(pub, "a@example.com", []string{"a"}, step.at, step.at.Add(time.Hour), 1)
		if err != nil || fp != step.signer {
			t.Errorf("at start+%v, Sign signed with %s (%v), want %s", step.at.Sub(start), fp, err, step.signer)
		}
	}
	// The old key's last certificate ends when its trust does.
	clk.mu.Lock()
	clk.now = switchAt.Add(-time.Minute)
	clk.mu.Unlock()
	cert, fp, err := ca.Sign(pub, "a@example.com", []string{"a"}, clk.Now(), clk.Now().Add(24*time.Hour), 2)
	if err != nil || fp != first {
		t.Fatalf("Sign just before the switch: %s, %v", fp, err)
	}
	if got := time.Unix(int64(cert.ValidBefore), 0).UTC(); !got.Equal(retires) {
		t.Errorf("the old key's certificate is valid until %v, want its retirement %v", got, retires)
	}
	// The keys after the rotation, as a restart reads them.
	if diff := cmp.Diff(ca.Keys(start), open(t, dir, clk).Keys(start)); diff != "" {
		t.Errorf("reopened keys differ (-before +after):\n%s", diff)
	}
}

func TestRotateAgainReplacesPendingKey(t *testing.T) {
	clk := newClock()
	dir := t.TempDir()
	ca := open(t, dir, clk)
	first := ca.Keys(clk.Now())[0].Fingerprint
	if _, err := ca.Rotate(24*time.Hour, time.Hour); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	keys, err := ca.Rotate(0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var states []string
	for _, k := range keys {
		states = append(states, k.State)
	}
	if diff := cmp.Diff([]string{wire.SSHCARetiring, wire.SSHCASigning}, states); diff != "" || keys[0].Fingerprint != first {
		t.Errorf("after rotating twice, states (-want +got):\n%s (first key %s, want %s)", diff, keys[0].Fingerprint, first)
	}
	if got := keyFiles(t, dir); len(got) != 2 {
		t.Errorf("key files %v, want 2: the pending key's file removed", got)
	}
	// Rotating once the old key has retired drops it, file and all.
	clk.Advance(2 * time.Hour)
	keys, err = ca.Rotate(0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keyFiles(t, dir) == nil || len(keyFiles(t, dir)) != 2 {
		t.Errorf("after a third rotation, %d keys and files %v, want 2 of each", len(keys), keyFiles(t, dir))
	}
}

func TestRotateRefuses(t *testing.T) {
	clk := newClock()
	dir := t.TempDir()
	ca := open(t, dir, clk)
	before := ca.Keys(clk.Now())
	for _, tt := range []struct {
		overlap, max time.Duration
		want         string
	}{
		{-time.Hour, time.Hour, "overlap -1h0m0s is not between 0 and 720h0m0s"},
		{sshca.MaxOverlap + time.Second, time.Hour, "is not between 0 and 720h0m0s"},
		{0, 0, "maximum validity 0s is not positive"},
	} {
		if _, err := ca.Rotate(tt.overlap, tt.max); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Rotate(%v, %v) = %v, want an error holding %q", tt.overlap, tt.max, err, tt.want)
		}
	}
	if diff := cmp.Diff(before, ca.Keys(clk.Now())); diff != "" || len(keyFiles(t, dir)) != 1 {
		t.Errorf("a refused rotation changed the keys (-before +after):\n%s", diff)
	}
}

func keyFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.key"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestFilesArePrivate(t *testing.T) {
	clk := newClock()
	dir := filepath.Join(t.TempDir(), "ssh-ca")
	ca := open(t, dir, clk)
	if _, err := ca.Rotate(time.Hour, time.Hour); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o700 {
		t.Errorf("directory mode %v, want 0700", got)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode(); got != 0o600 {
			t.Errorf("%s mode %v, want -rw-------", e.Name(), got)
		}
	}
	if len(names) != 3 {
		t.Errorf("files %v, want keys.json and two keys", names)
	}
	// A key file is an OpenSSH private key ssh-keygen can read.
	if keygen, err := exec.LookPath("ssh-keygen"); err == nil {
		out, err := exec.Command(keygen, "-l", "-f", keyFiles(t, dir)[0]).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "SHA256:") {
			t.Errorf("ssh-keygen -l on a key file: %v\n%s", err, out)
		}
	}
}

func TestOpenTightensDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ssh-ca")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	open(t, dir, newClock())
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o700 {
		t.Errorf("directory mode %v, want 0700", got)
	}
}

// TestCrashBetweenKeyAndIndex: a rotation that crashed after writing its
// key file but before the index left the CA as it was; its leftovers do
// not stop the next start.
func TestCrashBetweenKeyAndIndex(t *testing.T) {
	clk := newClock()
	dir := t.TempDir()
	ca := open(t, dir, clk)
	before := ca.Keys(clk.Now())
	// What a crash mid-rotation leaves: a durable key file the index does
	// not name, and a temporary index.
	other := t.TempDir()
	open(t, other, clk)
	orphan := keyFiles(t, other)[0]
	b, err := os.ReadFile(orphan)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, filepath.Base(orphan)), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".keys.json.tmp-123"), []byte(`{"keys": [`), 0o600); err != nil {
		t.Fatal(err)
	}
	again := open(t, dir, clk)
	if diff := cmp.Diff(before, again.Keys(clk.Now())); diff != "" {
		t.Errorf("keys after the crash (-before +after):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(dir, ".keys.json.tmp-123")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary index left behind: %v", err)
	}
}

func TestOpenRefusesDamage(t *testing.T) {
	for _, tt := range []struct {
		name   string
		damage func(t *testing.T, dir string)
		want   string
	}{
		{"index not JSON", func(t *testing.T, dir string) { write(t, dir, "keys.json", "{") }, "not a key index"},
		{"index lists nothing", func(t *testing.T, dir string) { write(t, dir, "keys.json", `{"keys": []}`) }, "lists no key"},
		{"unknown field", func(t *testing.T, dir string) { write(t, dir, "keys.json", `{"keys": [], "x": 1}`) }, "unknown field"},
		{"key file missing", func(t *testing.T, dir string) { os.Remove(keyFiles(t, dir)[0]) }, "no such file"},
		{"path in the index", func(t *testing.T, dir string) {
			write(t, dir, "keys.json", `{"keys": [{"file": "../x.key", "fingerprint": "x", "created_at": "2026-01-01T00:00:00Z", "signing_from": "2026-01-01T00:00:00Z"}]}`)
		}, "is not a file of the directory"},
		{"key swapped", func(t *testing.T, dir string) {
			other := t.TempDir()
			open(t, other, newClock())
			b, _ := os.ReadFile(keyFiles(t, other)[0])
			write(t, dir, filepath.Base(keyFiles(t, dir)[0]), string(b))
		}, "the index says"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			open(t, dir, newClock())
			tt.damage(t, dir)
			_, err := sshca.Open(dir, newClock().Now)
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("Open = %v, want one line holding %q", err, tt.want)
			}
		})
	}
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
