package cli

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/internal/testutil"
	"github.com/warrennet/warren/overlay/coord"
	"github.com/warrennet/warren/overlay/coord/sso"
	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/test/coordtest"
)

// codeIdP vouches for whoever the test says a code belongs to. The real
// provider's checks are the coordinator's tests' business; the CLI only
// shows what the coordinator knows.
type codeIdP struct {
	mu     sync.Mutex
	byCode map[string]sso.Identity
}

func (p *codeIdP) AuthURL(state, nonce, verifier string) string {
	return "https://idp.example.com/authorize?" + url.Values{"state": {state}}.Encode()
}

func (p *codeIdP) Exchange(_ context.Context, code, _, _ string) (sso.Identity, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	id, ok := p.byCode[code]
	if !ok {
		return sso.Identity{}, sso.ErrRefused
	}
	return id, nil
}

func (p *codeIdP) Refresh(context.Context, string) (sso.Identity, error) {
	return sso.Identity{}, sso.ErrRevoked
}

// login enrolls a laptop of id's person through the coordinator's login
// steps.
func login(t *testing.T, co *coord.Coordinator, idp *codeIdP, hostname string, key byte, id sso.Identity) {
	t.Helper()
	ctx := context.Background()
	var k wire.Key
	k[0], k[31] = key, 0x43
	start, err := co.StartLogin(ctx, wire.LoginStartRequest{PublicKey: k, Hostname: hostname})
	if err != nil {
		t.Fatal(err)
	}
	_, linkID, _ := strings.Cut(start.URL, wire.PathLoginPage+"/")
	to, err := co.LoginPage(linkID)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(to)
	idp.mu.Lock()
	idp.byCode[hostname] = id
	idp.mu.Unlock()
	if _, err := co.Callback(ctx, u.Query().Get("state"), hostname); err != nil {
		t.Fatal(err)
	}
}

func TestUsers(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	idp := &codeIdP{byCode: map[string]sso.Identity{}}
	s := coordtest.Start(t, coordtest.Options{
		Now:              func() time.Time { return now },
		Rand:             testutil.Seeded(7),
		IdentityProvider: func(string) coord.IdentityProvider { return idp },
	})
	tc := &testCoordinator{Server: s, co: s.Coord, url: s.URL, admin: s.Admin.String()}

	out, _, err := run(t, tc.admin, "users", "ls")
	if err != nil || !strings.HasPrefix(out, "no users;") {
		t.Errorf("users ls with none = %q, %v", out, err)
	}
	alice := sso.Identity{Issuer: "https://idp.example.com", Subject: "a", Email: "alice@example.com", Groups: []string{"eng", "\x1b[31mred"}}
	login(t, tc.co, idp, "alice-laptop", 1, alice)
	login(t, tc.co, idp, "alice-desk", 2, alice)
	if _, _, err := run(t, tc.admin, "token", "create", "--role", "client", "--name", "bob", "--user", "bob@example.com"); err != nil {
		t.Fatal(err)
	}

	out, _, err = run(t, tc.admin, "users", "ls", "--json")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "users-ls.json", out)

	out, _, err = run(t, tc.admin, "users", "ls")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"alice@example.com", "sso", `eng,\x1b[31mred`, "alice-desk,alice-laptop", "bob@example.com", "token"} {
		if !strings.Contains(out, want) {
			t.Errorf("users ls lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b") {
		t.Errorf("users ls printed an escape character:\n%q", out)
	}

	before := tc.co.Export()
	for _, tt := range []struct{ args, want string }{
		{"users rm carol@example.com", `no user "carol@example.com" (see: warren users ls)`},
		{"users rm carol", `user "carol" is not an e-mail address (name@domain)`},
		{"users rm", `usage: warren users rm EMAIL`},
		{"users rm bob@example.com", `user "bob@example.com" has no node and never logged in; only tokens name them (revoke those with: warren token revoke ID)`},
	} {
		_, _, err := run(t, tc.admin, strings.Fields(tt.args)...)
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s: %v, want %s", tt.args, err, tt.want)
		}
		if diff := cmp.Diff(before, tc.co.Export(), netipEqual); diff != "" {
			t.Errorf("%s was refused but changed the state:\n%s", tt.args, diff)
		}
	}

	out, _, err = run(t, tc.admin, "users", "rm", "alice@example.com")
	if err != nil || out != "user alice@example.com removed, with every node of theirs\n" {
		t.Errorf("users rm = %q, %v", out, err)
	}
	if n := tc.co.Nodes(); len(n) != 0 {
		t.Errorf("nodes left after users rm: %+v", n)
	}
}

// golden compares out with testdata/name, rewriting it with -update.
func golden(t *testing.T, name, out string) {
	t.Helper()
	path := filepath.Join("testdata", name)
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
		t.Errorf("%s (-golden +got):\n%s", name, diff)
	}
}
