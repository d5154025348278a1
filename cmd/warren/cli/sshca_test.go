package cli

import (
	"context"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/crypto/ssh"

	"github.com/warrennet/warren/overlay/wire"
)

const sshCAPolicy = `{
  "groups": {"eng": ["alice@example.com", "bob@example.com"]},
  "rules": [{"from": ["group:eng"], "to": ["192.168.0.0/24:443"]}],
  "ssh": [
    {"from": ["group:eng"], "to": ["192.168.0.0/24"], "as": ["deploy"]},
    {"from": ["user:alice@example.com"], "to": ["192.168.0.10"], "as": ["alice"]},
  ],
}`

// withSSHCerts starts a test coordinator that has issued three
// certificates: two to alice's laptop, one to bob's.
func withSSHCerts(t *testing.T) *testCoordinator {
	t.Helper()
	tc := newTestCoordinator(t)
	ctx := context.Background()
	nodes := map[string]wire.Node{}
	for i, u := range []struct{ name, user string }{{"alice-laptop", "alice@example.com"}, {"bob-laptop", "bob@example.com"}} {
		tok := tc.Token(t, wire.CreateTokenRequest{Role: wire.RoleClient, Name: u.name, User: u.user})
		resp, err := tc.co.Enroll(ctx, tok.Secret, wire.EnrollRequest{PublicKey: wire.Key{byte(10 + i), 31: 0x42}})
		if err != nil {
			t.Fatal(err)
		}
		nodes[u.name] = resp.Node
	}
	if _, err := tc.co.SetPolicy(ctx, wire.SetPolicyRequest{Document: sshCAPolicy}); err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		node     string
		validity time.Duration
	}{{"alice-laptop", 0}, {"bob-laptop", 8 * time.Hour}, {"alice-laptop", 48 * time.Hour}} {
		// Keys from fixed seeds, so their fingerprints are the same each run.
		seed := make([]byte, ed25519.SeedSize)
		seed[0] = byte(i + 1)
		pub, err := ssh.NewPublicKey(ed25519.NewKeyFromSeed(seed).Public())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tc.co.IssueSSHCert(ctx, nodes[c.node], wire.SSHCertRequest{PublicKey: string(ssh.MarshalAuthorizedKey(pub)), Validity: wire.Duration(c.validity)}); err != nil {
			t.Fatal(err)
		}
	}
	return tc
}

// caKeyRE matches what differs from run to run: the CA's keys (a fresh
// one per test coordinator) and their fingerprints.
var caKeyRE = regexp.MustCompile(`AAAAC3NzaC1lZDI1NTE5AAAAI[A-Za-z0-9+/]{43}|SHA256:[A-Za-z0-9+/]{43}`)

// normalizeCA names each distinct CA key and fingerprint by its order of
// appearance; fingerprints of the users' fixed keys stay as they are.
func normalizeCA(s string, keep ...string) string {
	seen := map[string]string{}
	return caKeyRE.ReplaceAllStringFunc(s, func(m string) string {
		for _, k := range keep {
			if m == k {
				return m
			}
		}
		if r, ok := seen[m]; ok {
			return r
		}
		kind := "CA-KEY"
		if strings.HasPrefix(m, "SHA256:") {
			kind = "CA-FINGERPRINT"
		}
		r := kind + "-" + string(rune('A'+len(seen)))
		seen[m] = r
		return r
	})
}

func userFingerprints(t *testing.T) []string {
	t.Helper()
	var out []string
	for i := range 3 {
		seed := make([]byte, ed25519.SeedSize)
		seed[0] = byte(i + 1)
		pub, err := ssh.NewPublicKey(ed25519.NewKeyFromSeed(seed).Public())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ssh.FingerprintSHA256(pub))
	}
	return out
}

func sshGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s (-golden +got):\n%s", name, diff)
	}
}

func TestSSHCAPrintsTrustedKeys(t *testing.T) {
	tc := withSSHCerts(t)
	out, _, err := run(t, tc.admin, "ssh-ca")
	if err != nil {
		t.Fatal(err)
	}
	ca, err := tc.co.SSHCA()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 1 || lines[0] != ca.Keys[0].PublicKey {
		t.Fatalf("warren ssh-ca printed %q, want the one key's line", out)
	}
	// Each line is one sshd reads as a CA key.
	pub, comment, _, _, err := ssh.ParseAuthorizedKey([]byte(lines[0]))
	if err != nil || ssh.FingerprintSHA256(pub) != ca.Keys[0].Fingerprint || comment != "warren-ssh-ca-20261123T100000Z" {
		t.Errorf("line %q: %v, comment %q", lines[0], err, comment)
	}

	// After a rotation, both keys, and the table says what each does.
	out, _, err = run(t, tc.admin, "ssh-ca", "rotate", "--overlap", "2h")
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := tc.co.SSHCA()
	if err != nil || len(rotated.Keys) != 2 {
		t.Fatalf("after a rotation: %+v, %v", rotated, err)
	}
	fp0, fp1 := rotated.Keys[0].Fingerprint, rotated.Keys[1].Fingerprint
	local := func(d time.Duration) string { return flowClock.Add(d).Local().Format("2006-01-02 15:04") }
	want := "STATE    FINGERPRINT" + strings.Repeat(" ", len(fp0)-len("FINGERPRINT")) + "  CREATED           SIGNS FROM        TRUSTED UNTIL\n" +
		"signing  " + fp0 + "  " + local(0) + "  -                 " + local(26*time.Hour) + "\n" +
		"next     " + fp1 + "  " + local(0) + "  " + local(2*time.Hour) + "  -\n" +
		"put every key in each server's TrustedUserCAKeys within 2h0m0s, before the new key signs: warren ssh-ca > FILE\n"
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("ssh-ca rotate (-want +got):\n%s", diff)
	}
	out, _, err = run(t, tc.admin, "ssh-ca")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out, "\n"); n != 2 {
		t.Errorf("after a rotation, warren ssh-ca printed %d lines, want 2:\n%s", n, out)
	}
	out, _, err = run(t, tc.admin, "ssh-ca", "--json")
	if err != nil {
		t.Fatal(err)
	}
	sshGolden(t, "ssh-ca.json", normalizeCA(out))
}

func TestSSHCALog(t *testing.T) {
	tc := withSSHCerts(t)
	fps := userFingerprints(t)
	local := func(d time.Duration) string { return flowClock.Add(d).Local().Format("2006-01-02 15:04:05") }
	out, _, err := run(t, tc.admin, "ssh-ca", "log")
	if err != nil {
		t.Fatal(err)
	}
	ca, err := tc.co.SSHCA()
	if err != nil {
		t.Fatal(err)
	}
	caFP := ca.Keys[0].Fingerprint
	pad := func(s string, n int) string { return s + strings.Repeat(" ", n-len(s)) }
	when := len(local(0))
	want := "SERIAL  " + pad("ISSUED", when) + "  USER               NODE          PRINCIPALS    " + pad("VALID UNTIL", when) + "  " + pad("KEY", len(fps[0])) + "  CA\n" +
		"3       " + local(0) + "  alice@example.com  alice-laptop  alice,deploy  " + local(24*time.Hour) + "  " + fps[2] + "  " + caFP + "\n" +
		"2       " + local(0) + "  bob@example.com    bob-laptop    deploy        " + local(8*time.Hour) + "  " + fps[1] + "  " + caFP + "\n" +
		"1       " + local(0) + "  alice@example.com  alice-laptop  alice,deploy  " + local(time.Hour) + "  " + fps[0] + "  " + caFP + "\n"
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("ssh-ca log (-want +got):\n%s", diff)
	}
	out, _, err = run(t, tc.admin, "ssh-ca", "log", "--user", "bob@example.com", "--limit", "5", "--json")
	if err != nil {
		t.Fatal(err)
	}
	sshGolden(t, "ssh-ca-log.json", normalizeCA(out, fps...))
	out, _, err = run(t, tc.admin, "ssh-ca", "log", "--user", "carol@example.com")
	if err != nil || out != "no SSH certificates issued to carol@example.com\n" {
		t.Errorf("ssh-ca log for a user without any = %q, %v", out, err)
	}
}

func TestSSHCARefusesBadInput(t *testing.T) {
	tc := withSSHCerts(t)
	before, _ := tc.co.SSHCA()
	for _, tt := range []struct{ args, want string }{
		{"ssh-ca extra", "usage: warren ssh-ca [--json] | rotate [--overlap DURATION] | log [--user EMAIL] [--limit N] [--json]"},
		{"ssh-ca rotate --overlap forever", `--overlap "forever" is not a duration from 0s to 30d (for example 24h or 7d)`},
		{"ssh-ca rotate --overlap -1h", `--overlap "-1h" is not a duration from 0s to 30d (for example 24h or 7d)`},
		{"ssh-ca rotate --overlap 31d", `--overlap "31d" is not a duration from 0s to 30d (for example 24h or 7d)`},
		{"ssh-ca rotate now", "usage: warren ssh-ca rotate [--overlap DURATION] [--json]"},
		{"ssh-ca log --limit 0", "--limit 0 is not from 1 to 10000"},
		{"ssh-ca log --limit 10001", "--limit 10001 is not from 1 to 10000"},
		{"ssh-ca log --user bob", `--user: user "bob" is not an e-mail address (name@domain)`},
		{"ssh-ca log --bogus", "flag provided but not defined: -bogus (see: warren ssh-ca log --help)"},
	} {
		t.Run(tt.args, func(t *testing.T) {
			_, _, err := run(t, tc.admin, strings.Fields(tt.args)...)
			if err == nil || err.Error() != tt.want {
				t.Errorf("error:\n got %v\nwant %s", err, tt.want)
			}
		})
	}
	after, _ := tc.co.SSHCA()
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("refused commands changed the CA (-before +after):\n%s", diff)
	}
	// A rotation with no overlap signs at once.
	out, _, err := run(t, tc.admin, "ssh-ca", "rotate", "--overlap", "0s")
	if err != nil || !strings.Contains(out, "the new key signs now") {
		t.Errorf("ssh-ca rotate --overlap 0s = %q, %v", out, err)
	}
}

func TestCoordinatorSSHCertMaxValidity(t *testing.T) {
	for _, tt := range []struct {
		args    string
		want    time.Duration
		wantErr string
	}{
		{"", 24 * time.Hour, ""},
		{"--ssh-cert-max-validity 8h", 8 * time.Hour, ""},
		{"--ssh-cert-max-validity 2d", 48 * time.Hour, ""},
		{"--ssh-cert-max-validity 0s", 0, `--ssh-cert-max-validity "0s" is not a positive duration (for example 8h or 24h)`},
		{"--ssh-cert-max-validity soon", 0, `--ssh-cert-max-validity "soon" is not a positive duration (for example 8h or 24h)`},
	} {
		t.Run(tt.args, func(t *testing.T) {
			var got *CoordinatorOptions
			app := New(Env{Stdout: &strings.Builder{}, Stderr: &strings.Builder{}}, Roles{Coordinator: func(_ context.Context, o CoordinatorOptions) error {
				got = &o
				return nil
			}})
			args := append([]string{"warren", "coordinator", "--data", t.TempDir()}, strings.Fields(tt.args)...)
			err := app.RunContext(context.Background(), Permute(app, args))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Errorf("error:\n got %v\nwant %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got == nil || got.SSHCertMaxValidity != tt.want {
				t.Errorf("coordinator started with %+v, want SSHCertMaxValidity %v", got, tt.want)
			}
		})
	}
}
