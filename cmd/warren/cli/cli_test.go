package cli

import (
	"bytes"
	"context"
	"flag"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/internal/testutil"
	"github.com/warrennet/warren/overlay/coord"
	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/test/coordtest"
)

var update = flag.Bool("update", false, "rewrite golden files")

// testCoordinator is a real coordinator behind a real TLS server, with a
// fixed clock and deterministic IDs so output can be compared as text.
type testCoordinator struct {
	*coordtest.Server
	co    *coord.Coordinator
	url   string
	admin string // admin token string
}

func newTestCoordinator(t *testing.T) *testCoordinator {
	t.Helper()
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	s := coordtest.Start(t, coordtest.Options{
		Now:  func() time.Time { return now },
		Rand: testutil.Seeded(7),
	})
	return &testCoordinator{Server: s, co: s.Coord, url: s.URL, admin: s.Admin.String()}
}

// enroll enrolls a node directly through the coordinator.
func (tc *testCoordinator) enroll(t *testing.T, role wire.Role, name string, keyByte byte) {
	t.Helper()
	var k wire.Key
	k[0], k[31] = keyByte, 0x42
	tc.Enroll(t, role, name, k)
}

// run runs the CLI with WARREN_ADMIN_TOKEN set to admin (unless empty).
func run(t *testing.T, admin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	env := Env{Stdout: &out, Stderr: &errb, Getenv: func(k string) string {
		if k == EnvAdminToken {
			return admin
		}
		return ""
	}}
	app := New(env, Roles{})
	err = app.RunContext(context.Background(), Permute(app, append([]string{"warren"}, args...)))
	return out.String(), errb.String(), err
}

func TestBadInputIsRefusedWithExactMessage(t *testing.T) {
	tc := newTestCoordinator(t)
	tc.enroll(t, wire.RoleConnector, "office", 1)
	tc.enroll(t, wire.RoleConnector, "aws", 2)
	if _, _, err := run(t, tc.admin, "routes", "add", "192.168.0.0/24", "--connector", "office"); err != nil {
		t.Fatal(err)
	}
	before := tc.co.Export()

	tests := []struct {
		args string
		want string
	}{
		{"routes add foo --connector office", `"foo" is not a valid CIDR prefix (for example 192.168.0.0/24)`},
		{"routes add 192.168.0.1/24 --connector office", `192.168.0.1/24 has host bits set; did you mean 192.168.0.0/24?`},
		{"routes add 10.1.2.3 --connector office", `"10.1.2.3" is an address, not a prefix; did you mean 10.1.2.3/32?`},
		{"routes add 127.0.0.0/8 --connector office", `127.0.0.0/8 overlaps loopback (127.0.0.0/8) and cannot be routed`},
		{"routes add 169.254.0.0/16 --connector office", `169.254.0.0/16 overlaps link-local (169.254.0.0/16) and cannot be routed`},
		{"routes add 239.1.0.0/16 --connector office", `239.1.0.0/16 overlaps multicast (224.0.0.0/4) and cannot be routed`},
		{"routes add 0.0.0.0/8 --connector office", `0.0.0.0/8 overlaps this network (0.0.0.0/8) and cannot be routed`},
		{"routes add 100.100.0.0/16 --connector office", `100.100.0.0/16 overlaps the Warren overlay range (100.96.0.0/12) and cannot be routed`},
		{"routes add 10.0.0.0/8 --connector offce", `unknown connector "offce" (enrolled connectors: aws, office)`},
		{"routes add 192.168.0.0/24 --connector aws", `192.168.0.0/24 is already served by connector "office"; remove it first with: warren routes rm 192.168.0.0/24`},
		{"routes add 10.0.0.0/8", `no connector given; add --connector NAME`},
		{"routes add", `usage: warren routes add CIDR --connector NAME [--comment TEXT] [--proxy-protocol] [--allow-connector-host] [--force]`},
		{"routes add 10.0.0.0/8 --connector office --bogus", `flag provided but not defined: -bogus (see: warren routes add --help)`},
		{"routes rm 10.9.0.0/16", `no route for 10.9.0.0/16 (see: warren routes ls)`},
		{"routes rm 10.9.0.1/16", `10.9.0.1/16 has host bits set; did you mean 10.9.0.0/16?`},
		{"routes get 10.0.0", `"10.0.0" is not an IP address`},
		{"token create --role admin --name x", `role "admin" is not one of: client, connector`},
		{"token create --role client --name Bad_Name", `name "Bad_Name" may hold only lowercase letters, digits and inner hyphens`},
		{"token create --role client --name laptop --expires soon", `--expires "soon" is not a positive duration (for example 30m, 24h or 7d)`},
		{"token create --role client", `usage: warren token create --role client|connector --name NAME [--user EMAIL] [--reusable] [--expires DURATION]`},
		{"token revoke nope", `no token with ID "nope" (see: warren token ls)`},
		{"nodes rm ghost", `no node named "ghost" (see: warren nodes ls)`},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			stdout, _, err := run(t, tc.admin, strings.Fields(tt.args)...)
			if err == nil {
				t.Fatalf("succeeded, printing %q; want error %s", stdout, tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error:\n got %s\nwant %s", got, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
			if diff := cmp.Diff(before, tc.co.Export(), netipEqual); diff != "" {
				t.Errorf("refused command changed state (-before +after):\n%s", diff)
			}
		})
	}
}

func TestCredentialAndReachErrors(t *testing.T) {
	tc := newTestCoordinator(t)
	good, err := wire.ParseToken(tc.admin)
	if err != nil {
		t.Fatal(err)
	}
	wrongSecret := good
	wrongSecret.Secret = strings.Repeat("x", 43)
	wrongPin := good
	wrongPin.Pin = strings.Repeat("ab", 32)
	closed := httptest.NewUnstartedServer(nil)
	closed.StartTLS()
	deadURL := closed.URL
	closed.Close()
	dead := good
	dead.URL = deadURL

	tests := []struct {
		name, admin, want string
	}{
		{"wrong secret", wrongSecret.String(), "the coordinator refused the admin credential (wrong, revoked or not an admin token)"},
		{"pin mismatch", wrongPin.String(), "coordinator certificate does not match the token's pin (expected sha256 abababababababab…, got " + good.Pin[:16] + "…); the token is for a different coordinator or the certificate changed"},
		{"unreachable", dead.String(), "cannot reach the coordinator at " + deadURL + ": connection refused"},
		{"garbage", "hello", "admin token from WARREN_ADMIN_TOKEN: not a Warren token (it should start with wrn1_; copy it again in one piece)"},
		{"none", "", "no admin credential: pass --admin-token-file FILE, set WARREN_ADMIN_TOKEN, or on the coordinator host pass --data DIR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := run(t, tt.admin, "routes", "ls")
			if err == nil || err.Error() != tt.want {
				t.Errorf("error:\n got %v\nwant %s", err, tt.want)
			}
		})
	}
}

func TestAdminTokenFromFileAndDataDir(t *testing.T) {
	tc := newTestCoordinator(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, AdminTokenFile), []byte(tc.admin+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"routes", "ls", "--admin-token-file", filepath.Join(dir, AdminTokenFile)},
		{"routes", "ls", "--data", dir},
		{"--data", dir, "routes", "ls"},
	} {
		out, _, err := run(t, "", args...)
		if err != nil {
			t.Errorf("%v: %v", args, err)
			continue
		}
		if !strings.HasPrefix(out, "no routes") {
			t.Errorf("%v printed %q, want the empty-table hint", args, out)
		}
	}
	_, _, err := run(t, "", "routes", "ls", "--data", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "has it started once?") {
		t.Errorf("empty data dir: error %v", err)
	}
}

func TestTokenCreatePrintsOnlyTheToken(t *testing.T) {
	tc := newTestCoordinator(t)
	out, stderr, err := run(t, tc.admin, "token", "create", "--role", "connector", "--name", "office", "--expires", "7d")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := wire.ParseToken(strings.TrimSuffix(out, "\n"))
	if err != nil {
		t.Fatalf("stdout %q is not just a token: %v", out, err)
	}
	if tok.URL != tc.url {
		t.Errorf("token URL = %s, want %s", tok.URL, tc.url)
	}
	if want := `connector "office", single-use, expires 2026-11-30T10:00:00Z`; !strings.Contains(stderr, want) {
		t.Errorf("stderr %q lacks %q", stderr, want)
	}
	if strings.Contains(stderr, tok.Secret) {
		t.Error("stderr repeats the secret")
	}
}

// TestGoldenJSON pins the --json output that scripts depend on.
func TestGoldenJSON(t *testing.T) {
	tc := newTestCoordinator(t)
	tc.enroll(t, wire.RoleConnector, "office", 1)
	tc.enroll(t, wire.RoleClient, "laptop", 2)
	for _, args := range []string{
		"routes add 192.168.0.0/24 --connector office --comment office-lan",
		"routes add 2001:db8:1::/48 --connector office",
		"token create --role client --name phones --reusable --expires 24h",
		"hosts add production-server 192.168.0.10 --comment db-primary",
	} {
		if _, _, err := run(t, tc.admin, strings.Fields(args)...); err != nil {
			t.Fatalf("%s: %v", args, err)
		}
	}
	for _, tt := range []struct{ golden, args string }{
		{"routes-ls.json", "routes ls --json"},
		{"nodes-ls.json", "nodes ls --json"},
		{"token-ls.json", "token ls --json"},
		{"routes-get.json", "routes get 192.168.0.10 --json"},
		{"routes-get-none.json", "routes get 10.0.0.1 --json"},
		{"hosts-ls.json", "hosts ls --json"},
		{"policy-get-allow-all.json", "policy get --json"},
	} {
		t.Run(tt.golden, func(t *testing.T) {
			out, _, err := run(t, tc.admin, strings.Fields(tt.args)...)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tt.golden)
			if *update {
				if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), out); diff != "" {
				t.Errorf("%s (-golden +got):\n%s", tt.args, diff)
			}
		})
	}
}
