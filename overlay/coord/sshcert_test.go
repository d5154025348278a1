package coord

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"

	"github.com/warrennet/warren/internal/testutil"
	"github.com/warrennet/warren/overlay/coord/sshca"
	"github.com/warrennet/warren/overlay/coord/store"
	"github.com/warrennet/warren/overlay/wire"
)

// sshPolicy grants alice two principals through a group and bob one;
// carol has a rule but no ssh rule.
const sshPolicy = `{
  "groups": {"eng": ["alice@example.com"], "known": ["bob@example.com", "carol@example.com"]},
  "rules": [{"from": ["user:carol@example.com"], "to": ["10.1.0.0/16:443"]}],
  "ssh": [
    {"from": ["group:eng"], "to": ["10.1.0.0/16"], "as": ["deploy", "alice"]},
    {"from": ["user:bob@example.com"], "to": ["10.1.0.10"], "as": ["bob"]},
  ],
}`

// sshHarness is a coordinator with an SSH CA, both kept in dir so a test
// can start it again over the same state.
type sshHarness struct {
	t     *testing.T
	dir   string
	clock *clock
	st    store.Store
	ca    *sshca.CA
	c     *Coordinator
}

func newSSHHarness(t *testing.T, dir string, clk *clock, maxValidity time.Duration) *sshHarness {
	t.Helper()
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(dir, "coordinator.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ca, err := sshca.Open(filepath.Join(dir, sshca.Dir), clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(ctx, Config{
		Store: st, URL: "https://198.51.100.10:8443", Now: clk.Now, Rand: testutil.Seeded(2),
		SSHCA: ca, SSHCertMaxValidity: maxValidity,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &sshHarness{t: t, dir: dir, clock: clk, st: st, ca: ca, c: c}
}

// enroll enrolls a node with a token naming user.
func (h *sshHarness) enroll(role wire.Role, name, user string, key byte) wire.Node {
	h.t.Helper()
	ctx := context.Background()
	resp, err := h.c.CreateToken(ctx, wire.CreateTokenRequest{Role: role, Name: name, User: user})
	if err != nil {
		h.t.Fatal(err)
	}
	tok, err := wire.ParseToken(resp.Token)
	if err != nil {
		h.t.Fatal(err)
	}
	e, err := h.c.Enroll(ctx, tok.Secret, wire.EnrollRequest{PublicKey: wire.Key{key, 31: 0x42}})
	if err != nil {
		h.t.Fatal(err)
	}
	return e.Node
}

func (h *sshHarness) setPolicy(doc string) {
	h.t.Helper()
	if _, err := h.c.SetPolicy(context.Background(), wire.SetPolicyRequest{Document: doc}); err != nil {
		h.t.Fatalf("SetPolicy: %v", err)
	}
}

func sshPubLine(t *testing.T) (string, ssh.PublicKey) {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(p))) + " alice@laptop", p
}

func parseCert(t *testing.T, line string) *ssh.Certificate {
	t.Helper()
	pub, comment, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		t.Fatalf("parsing the certificate line: %v", err)
	}
	if comment == "" {
		t.Errorf("certificate line %q has no comment", line)
	}
	cert, ok := pub.(*ssh.Certificate)
	if !ok {
		t.Fatalf("got a %T, want a certificate", pub)
	}
	return cert
}

func code(err error) string {
	var we *wire.Error
	if errors.As(err, &we) {
		return we.Code
	}
	return ""
}

func TestIssueSSHCertPrincipalsFromPolicy(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)}
	h := newSSHHarness(t, t.TempDir(), clk, 0)
	ctx := context.Background()
	alice := h.enroll(wire.RoleClient, "alice-laptop", "alice@example.com", 1)
	bob := h.enroll(wire.RoleClient, "bob-laptop", "bob@example.com", 2)
	carol := h.enroll(wire.RoleClient, "carol-laptop", "carol@example.com", 3)
	kiosk := h.enroll(wire.RoleClient, "kiosk", "", 4)
	office := h.enroll(wire.RoleConnector, "office", "", 5)
	line, pub := sshPubLine(t)

	// Allow-all grants no principals.
	_, err := h.c.IssueSSHCert(ctx, alice, wire.SSHCertRequest{PublicKey: line})
	if code(err) != wire.CodeNoPrincipals || !strings.Contains(err.Error(), "no access policy is set") {
		t.Errorf("IssueSSHCert under allow-all = %v, want %s saying no policy is set", err, wire.CodeNoPrincipals)
	}
	h.setPolicy(sshPolicy)

	now := clk.Now()
	for _, tt := range []struct {
		name     string
		node     wire.Node
		validity time.Duration
		want     []string // principals; nil for refused
		code     string
		msg      string
		before   time.Time
	}{
		{name: "alice by group", node: alice, want: []string{"alice", "deploy"}, before: now.Add(time.Hour)},
		{name: "bob by user", node: bob, validity: 2 * time.Hour, want: []string{"bob"}, before: now.Add(2 * time.Hour)},
		{name: "above the cap is capped", node: bob, validity: 72 * time.Hour, want: []string{"bob"}, before: now.Add(24 * time.Hour)},
		{name: "carol has no ssh rule", node: carol, code: wire.CodeNoPrincipals,
			msg: "no ssh rule of the access policy lets carol@example.com log in as anybody: add an ssh rule naming them (warren policy set)"},
		{name: "a client without a user", node: kiosk, code: wire.CodeForbidden, msg: `node "kiosk" has no user`},
		{name: "a connector", node: office, code: wire.CodeForbidden, msg: `only clients get SSH certificates; "office" is a connector`},
		{name: "negative validity", node: alice, validity: -time.Hour, code: wire.CodeInvalid, msg: "validity -1h0m0s is negative"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := h.c.IssueSSHCert(ctx, tt.node, wire.SSHCertRequest{PublicKey: line, Validity: wire.Duration(tt.validity)})
			if tt.want == nil {
				if code(err) != tt.code || !strings.Contains(err.Error(), tt.msg) || strings.Contains(err.Error(), "\n") {
					t.Errorf("IssueSSHCert = %v, want %s, one line holding %q", err, tt.code, tt.msg)
				}
				return
			}
			if err != nil {
				t.Fatalf("IssueSSHCert: %v", err)
			}
			cert := parseCert(t, resp.Certificate)
			got := []any{resp.KeyID, resp.Principals, resp.ValidAfter, resp.ValidBefore, cert.KeyId, cert.ValidPrincipals,
				int64(cert.ValidAfter), int64(cert.ValidBefore), cert.Serial, ssh.FingerprintSHA256(cert.Key)}
			want := []any{tt.node.User, tt.want, now.Add(-5 * time.Minute), tt.before, tt.node.User, tt.want,
				now.Add(-5 * time.Minute).Unix(), tt.before.Unix(), resp.Serial, ssh.FingerprintSHA256(pub)}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("certificate (-want +got):\n%s", diff)
			}
			// sshd trusting the CA's listed keys lets the user in as each
			// principal, and nobody else.
			ca, err := h.c.SSHCA()
			if err != nil {
				t.Fatal(err)
			}
			caKey, _, _, _, err := ssh.ParseAuthorizedKey([]byte(ca.Keys[0].PublicKey))
			if err != nil {
				t.Fatal(err)
			}
			checker := &ssh.CertChecker{
				IsUserAuthority: func(k ssh.PublicKey) bool { return string(k.Marshal()) == string(caKey.Marshal()) },
				Clock:           func() time.Time { return now },
			}
			for _, p := range tt.want {
				if err := checker.CheckCert(p, cert); err != nil {
					t.Errorf("CheckCert(%s): %v", p, err)
				}
			}
			if err := checker.CheckCert("root", cert); err == nil {
				t.Errorf("CheckCert(root) accepted a certificate for %v", tt.want)
			}
			if !checker.IsUserAuthority(cert.SignatureKey) {
				t.Errorf("the certificate's signer is not among the listed CA keys")
			}
		})
	}
	// Only the certificates issued are logged, newest first.
	log, err := h.c.SSHCertLog(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range log {
		got = append(got, r.User+" "+r.Node+" "+strings.Join(r.Principals, ",")+" "+r.ValidBefore.Sub(r.IssuedAt).String())
	}
	want := []string{
		"bob@example.com bob-laptop bob 24h0m0s",
		"bob@example.com bob-laptop bob 2h0m0s",
		"alice@example.com alice-laptop alice,deploy 1h0m0s",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("log (-want +got):\n%s", diff)
	}
	if log[0].KeyFingerprint != ssh.FingerprintSHA256(pub) || log[0].CAFingerprint == "" {
		t.Errorf("log fingerprints: key %q, CA %q", log[0].KeyFingerprint, log[0].CAFingerprint)
	}
	alices, err := h.c.SSHCertLog(ctx, "alice@example.com", 10)
	if err != nil || len(alices) != 1 {
		t.Errorf("SSHCertLog(alice) = %d records, %v; want 1", len(alices), err)
	}
	for _, bad := range []struct {
		user  string
		limit int
	}{{"", -1}, {"", MaxSSHCertLogLimit + 1}, {"alice", 0}} {
		if _, err := h.c.SSHCertLog(ctx, bad.user, bad.limit); code(err) != wire.CodeInvalid {
			t.Errorf("SSHCertLog(%q, %d) = %v, want %s", bad.user, bad.limit, err, wire.CodeInvalid)
		}
	}
}

func TestIssueSSHCertRefusesKeys(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)}
	h := newSSHHarness(t, t.TempDir(), clk, 0)
	ctx := context.Background()
	alice := h.enroll(wire.RoleClient, "alice-laptop", "alice@example.com", 1)
	h.setPolicy(sshPolicy)
	line, _ := sshPubLine(t)
	resp, err := h.c.IssueSSHCert(ctx, alice, wire.SSHCertRequest{PublicKey: line})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ key, msg string }{
		{resp.Certificate, "that is a certificate, not a public key"},
		{"ssh-dss AAAAB3NzaC1kc3MAAACBAP alice@laptop", "DSA keys are not accepted"},
		{"", "no SSH public key given"},
	} {
		_, err := h.c.IssueSSHCert(ctx, alice, wire.SSHCertRequest{PublicKey: tt.key})
		if code(err) != wire.CodeInvalid || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("IssueSSHCert(%.30q) = %v, want %s holding %q", tt.key, err, wire.CodeInvalid, tt.msg)
		}
	}
	if log, _ := h.c.SSHCertLog(ctx, "", 0); len(log) != 1 {
		t.Errorf("%d certificates logged, want 1: refusals log nothing", len(log))
	}
}

// TestSSHSerialsAcrossRestart: serials grow across a restart of the
// coordinator, and the CA's keys survive it.
func TestSSHSerialsAcrossRestart(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)}
	dir := t.TempDir()
	h := newSSHHarness(t, dir, clk, 8*time.Hour)
	ctx := context.Background()
	alice := h.enroll(wire.RoleClient, "alice-laptop", "alice@example.com", 1)
	h.setPolicy(sshPolicy)
	line, _ := sshPubLine(t)
	var serials []uint64
	issue := func(h *sshHarness) {
		t.Helper()
		resp, err := h.c.IssueSSHCert(ctx, alice, wire.SSHCertRequest{PublicKey: line})
		if err != nil {
			t.Fatal(err)
		}
		if cert := parseCert(t, resp.Certificate); cert.Serial != resp.Serial {
			t.Errorf("certificate serial %d, response says %d", cert.Serial, resp.Serial)
		}
		serials = append(serials, resp.Serial)
	}
	issue(h)
	issue(h)
	before, err := h.c.SSHCA()
	if err != nil {
		t.Fatal(err)
	}
	h.st.Close()
	h2 := newSSHHarness(t, dir, clk, 8*time.Hour)
	issue(h2)
	if diff := cmp.Diff([]uint64{1, 2, 3}, serials); diff != "" {
		t.Errorf("serials (-want +got):\n%s", diff)
	}
	after, err := h2.c.SSHCA()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("CA keys after a restart (-before +after):\n%s", diff)
	}
}

func TestRotateSSHCA(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)}
	h := newSSHHarness(t, t.TempDir(), clk, 8*time.Hour)
	ctx := context.Background()
	alice := h.enroll(wire.RoleClient, "alice-laptop", "alice@example.com", 1)
	h.setPolicy(sshPolicy)
	line, _ := sshPubLine(t)
	ca, err := h.c.RotateSSHCA(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(ca.Keys) != 2 || ca.Keys[0].State != wire.SSHCASigning || ca.Keys[1].State != wire.SSHCANext {
		t.Fatalf("after rotating, keys %+v: want signing, next", ca.Keys)
	}
	want := clk.Now().Add(time.Hour + 8*time.Hour)
	if r := ca.Keys[0].RetiresAt; r == nil || !r.Equal(want) {
		t.Errorf("the old key retires at %v, want overlap + max validity: %v", r, want)
	}
	clk.Advance(time.Hour)
	resp, err := h.c.IssueSSHCert(ctx, alice, wire.SSHCertRequest{PublicKey: line})
	if err != nil {
		t.Fatal(err)
	}
	if got := ssh.FingerprintSHA256(parseCert(t, resp.Certificate).SignatureKey); got != ca.Keys[1].Fingerprint {
		t.Errorf("after the overlap, signed by %s, want the new key %s", got, ca.Keys[1].Fingerprint)
	}
	for _, bad := range []time.Duration{-time.Second, sshca.MaxOverlap + time.Second} {
		if _, err := h.c.RotateSSHCA(ctx, bad); code(err) != wire.CodeInvalid {
			t.Errorf("RotateSSHCA(%v) = %v, want %s", bad, err, wire.CodeInvalid)
		}
	}
	now, _ := h.c.SSHCA()
	if len(now.Keys) != 2 {
		t.Errorf("refused rotations changed the keys: %+v", now.Keys)
	}
}

func TestNoSSHCA(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	laptop := wire.Node{Name: "laptop", Role: wire.RoleClient, User: "alice@example.com"}
	if _, err := h.c.IssueSSHCert(ctx, laptop, wire.SSHCertRequest{}); code(err) != wire.CodeUnavailable {
		t.Errorf("IssueSSHCert without a CA = %v, want %s", err, wire.CodeUnavailable)
	}
	if _, err := h.c.SSHCA(); code(err) != wire.CodeUnavailable {
		t.Errorf("SSHCA without a CA = %v, want %s", err, wire.CodeUnavailable)
	}
	if _, err := h.c.RotateSSHCA(ctx, 0); code(err) != wire.CodeUnavailable {
		t.Errorf("RotateSSHCA without a CA = %v, want %s", err, wire.CodeUnavailable)
	}
}
