package coord

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/overlay/coord/sso"
	"github.com/warrennet/warren/overlay/wire"
)

// fakeIdP is a domain-level identity provider: it knows people by
// authorization code and by refresh token. The real provider's checks are
// shown at the API level against test/oidctest.
type fakeIdP struct {
	mu sync.Mutex
	// byCode: what Exchange answers for a code; an unknown code is
	// refused.
	byCode map[string]sso.Identity
	// byRefresh: what Refresh answers for a refresh token (an error
	// there is returned as is).
	byRefresh map[string]refreshAnswer
	// logins: the nonce and verifier AuthURL was given, by state; Exchange
	// checks them.
	logins    map[string][2]string
	refreshes int
}

type refreshAnswer struct {
	id  sso.Identity
	err error
}

func newFakeIdP() *fakeIdP {
	return &fakeIdP{byCode: map[string]sso.Identity{}, byRefresh: map[string]refreshAnswer{}, logins: map[string][2]string{}}
}

func (f *fakeIdP) AuthURL(state, nonce, verifier string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logins[state] = [2]string{nonce, verifier}
	return "https://idp.example.com/authorize?" + url.Values{"state": {state}, "nonce": {nonce}}.Encode()
}

func (f *fakeIdP) Exchange(ctx context.Context, code, verifier, nonce string) (sso.Identity, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	found := false
	for _, l := range f.logins {
		found = found || l == [2]string{nonce, verifier}
	}
	if !found {
		return sso.Identity{}, fmt.Errorf("%w: nonce or verifier not of any login", sso.ErrRefused)
	}
	id, ok := f.byCode[code]
	if !ok {
		return sso.Identity{}, fmt.Errorf("%w: the e-mail address is not verified", sso.ErrRefused)
	}
	delete(f.byCode, code) // codes are single-use at a provider too
	return id, nil
}

func (f *fakeIdP) Refresh(ctx context.Context, rt string) (sso.Identity, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refreshes++
	a, ok := f.byRefresh[rt]
	if !ok {
		return sso.Identity{}, errors.New("provider unreachable")
	}
	return a.id, a.err
}

func alice(groups ...string) sso.Identity {
	return sso.Identity{Issuer: "https://idp.example.com", Subject: "alice-sub", Email: "alice@example.com", Groups: groups, RefreshToken: "rt-alice"}
}

func newSSOHarness(t *testing.T) (*harness, *fakeIdP) {
	t.Helper()
	idp := newFakeIdP()
	h := newHarnessWith(t, func(c *Config) { c.IdentityProvider = idp })
	h.c.loginWait = 100 * time.Millisecond
	return h, idp
}

// login is one login driven as the laptop and the browser do.
type login struct {
	start wire.LoginStartResponse
	id    string // the link's last element
	state string // what the provider redirect carries
}

func (h *harness) startLogin(hostname string) *login {
	h.t.Helper()
	resp, err := h.c.StartLogin(context.Background(), netip.Prefix{}, wire.LoginStartRequest{PublicKey: testKey(), Hostname: hostname})
	if err != nil {
		h.t.Fatalf("StartLogin: %v", err)
	}
	prefix := h.c.url + wire.PathLoginPage + "/"
	if !strings.HasPrefix(resp.URL, prefix) {
		h.t.Fatalf("login URL %q does not start with %q", resp.URL, prefix)
	}
	return &login{start: resp, id: strings.TrimPrefix(resp.URL, prefix)}
}

// open opens the link as a browser does, and returns the state the
// provider would send back.
func (h *harness) open(l *login) {
	h.t.Helper()
	to, err := h.c.LoginPage(l.id)
	if err != nil {
		h.t.Fatalf("LoginPage: %v", err)
	}
	u, err := url.Parse(to)
	if err != nil {
		h.t.Fatal(err)
	}
	l.state = u.Query().Get("state")
}

// loginAs runs a whole login of hostname as id and returns the enrollment.
func (h *harness) loginAs(idp *fakeIdP, hostname string, id sso.Identity) wire.EnrollResponse {
	h.t.Helper()
	l := h.startLogin(hostname)
	h.open(l)
	code := "code-" + l.id
	idp.mu.Lock()
	idp.byCode[code] = id
	idp.byRefresh[id.RefreshToken] = refreshAnswer{id: id}
	idp.mu.Unlock()
	if _, err := h.c.Callback(context.Background(), l.state, code); err != nil {
		h.t.Fatalf("Callback: %v", err)
	}
	resp, err := h.c.WaitLogin(context.Background(), l.start.WaitSecret)
	if err != nil || !resp.Done || resp.Enroll == nil {
		h.t.Fatalf("WaitLogin = %+v, %v; want done", resp, err)
	}
	return *resp.Enroll
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != code {
		t.Errorf("%s: %v, want code %s", what, err, code)
		return
	}
	if we.Message == "" || strings.ContainsAny(we.Message, "\r\n") {
		t.Errorf("%s: message %q is not one line", what, we.Message)
	}
}

func TestLogin(t *testing.T) {
	h, idp := newSSOHarness(t)
	ctx := context.Background()
	l := h.startLogin("Alice's MacBook.local")
	if len(l.id) != 32 || len(l.start.WaitSecret) < 43 {
		t.Errorf("login ID %q (want 128 bits in hex), wait secret %d characters (want 256 bits)", l.id, len(l.start.WaitSecret))
	}
	if l.start.Code != loginCode(l.start.WaitSecret) || len(l.start.Code) != 9 || l.start.Code[4] != '-' {
		t.Errorf("code %q", l.start.Code)
	}
	if want := h.clock.Now().Add(wire.LoginTTL).UTC(); !l.start.ExpiresAt.Equal(want) {
		t.Errorf("expires %v, want %v", l.start.ExpiresAt, want)
	}
	// Nothing yet: the wait times out with Done false.
	if resp, err := h.c.WaitLogin(ctx, l.start.WaitSecret); err != nil || resp.Done {
		t.Fatalf("WaitLogin before the login = %+v, %v; want not done", resp, err)
	}
	h.open(l)
	// A second visit of the link is refused: the redirect has started.
	_, err := h.c.LoginPage(l.id)
	wantCode(t, "LoginPage again", err, wire.CodeLoginUsed)

	idp.byCode["the-code"] = alice("eng", "ops")
	// A wait in progress wakes when the login finishes.
	waited := make(chan wire.LoginWaitResponse, 1)
	h.c.loginWait = 5 * time.Second
	go func() {
		resp, err := h.c.WaitLogin(ctx, l.start.WaitSecret)
		if err != nil {
			t.Errorf("WaitLogin: %v", err)
		}
		waited <- resp
	}()
	res, err := h.c.Callback(ctx, l.state, "the-code")
	if err != nil {
		t.Fatalf("Callback: %v", err)
	}
	if diff := cmp.Diff(LoginResult{Email: "alice@example.com", Hostname: "Alice's MacBook.local", Node: "alice-s-macbook", Code: l.start.Code}, res); diff != "" {
		t.Errorf("Callback result (-want +got):\n%s", diff)
	}
	resp := <-waited
	if !resp.Done || resp.Enroll == nil || resp.Enroll.Credential == "" {
		t.Fatalf("WaitLogin = %+v; want the enrollment", resp)
	}
	n := resp.Enroll.Node
	if n.Name != "alice-s-macbook" || n.User != "alice@example.com" || n.Role != wire.RoleClient {
		t.Errorf("enrolled node %+v", n)
	}
	if got, err := h.c.AuthenticateNode(resp.Enroll.Credential); err != nil || got.ID != n.ID {
		t.Errorf("AuthenticateNode(the login's credential) = %+v, %v", got, err)
	}
	// The credential is given once; the callback and the link work once.
	_, err = h.c.WaitLogin(ctx, l.start.WaitSecret)
	wantCode(t, "WaitLogin again", err, wire.CodeLoginUsed)
	_, err = h.c.Callback(ctx, l.state, "the-code")
	wantCode(t, "Callback replayed", err, wire.CodeLoginUsed)
	_, err = h.c.LoginPage(l.id)
	wantCode(t, "LoginPage after the login", err, wire.CodeLoginUsed)

	users := h.c.Users()
	if len(users) != 1 || users[0].Source != wire.UserSourceSSO || !cmp.Equal(users[0].Groups, []string{"eng", "ops"}) ||
		!cmp.Equal(users[0].Nodes, []string{"alice-s-macbook"}) || users[0].LastLogin == nil {
		t.Errorf("Users = %+v", users)
	}
	if got := h.c.Export().Users; len(got) != 1 || got[0].Email != "alice@example.com" {
		t.Errorf("Export users = %+v", got)
	}
	// The same hostname again: a suffix.
	e := h.loginAs(idp, "alice-s-macbook", alice("eng"))
	if e.Node.Name != "alice-s-macbook-2" {
		t.Errorf("second laptop named %q, want alice-s-macbook-2", e.Node.Name)
	}
	// The groups of the last login are the user's.
	if g := h.c.snap.Load().providerGroups(); !cmp.Equal(g, map[string][]string{"eng": {"alice@example.com"}}) {
		t.Errorf("provider groups %v", g)
	}
}

func TestLoginExpires(t *testing.T) {
	h, idp := newSSOHarness(t)
	ctx := context.Background()
	// Never opened.
	l1 := h.startLogin("a")
	// Opened, called back too late.
	l2 := h.startLogin("b")
	h.open(l2)
	idp.byCode["c2"] = alice()
	h.clock.Advance(wire.LoginTTL)
	_, err := h.c.LoginPage(l1.id)
	wantCode(t, "LoginPage after 10 minutes", err, wire.CodeLoginExpired)
	_, err = h.c.WaitLogin(ctx, l1.start.WaitSecret)
	wantCode(t, "WaitLogin after 10 minutes", err, wire.CodeLoginExpired)
	_, err = h.c.Callback(ctx, l2.state, "c2")
	wantCode(t, "Callback after 10 minutes", err, wire.CodeLoginExpired)
	if len(h.c.Nodes()) != 0 || len(h.c.Users()) != 0 || idp.byCode["c2"].Email == "" {
		t.Errorf("an expired login enrolled something or spent the code")
	}
	// Unknown links, states and wait secrets.
	_, err = h.c.LoginPage("00112233445566778899aabbccddeeff")
	wantCode(t, "LoginPage of an unknown login", err, wire.CodeNotFound)
	_, err = h.c.Callback(ctx, "forged", "c2")
	wantCode(t, "Callback with an unknown state", err, wire.CodeNotFound)
	_, err = h.c.WaitLogin(ctx, "guess")
	wantCode(t, "WaitLogin with an unknown secret", err, wire.CodeLoginExpired)
}

func TestLoginRefused(t *testing.T) {
	h, _ := newSSOHarness(t)
	ctx := context.Background()
	l := h.startLogin("laptop")
	h.open(l)
	_, err := h.c.Callback(ctx, l.state, "a code the provider refuses")
	wantCode(t, "Callback", err, wire.CodeLoginRefused)
	if err == nil || !strings.Contains(err.Error(), "not verified") {
		t.Errorf("Callback error %v does not say why", err)
	}
	_, err = h.c.WaitLogin(ctx, l.start.WaitSecret)
	wantCode(t, "WaitLogin", err, wire.CodeLoginRefused)
	_, err = h.c.Callback(ctx, l.state, "another")
	wantCode(t, "Callback again", err, wire.CodeLoginUsed)
	if len(h.c.Nodes()) != 0 || len(h.c.Users()) != 0 {
		t.Errorf("a refused login enrolled something")
	}
}

func TestLoginWaitEndsWithContext(t *testing.T) {
	h, _ := newSSOHarness(t)
	h.c.loginWait = time.Minute
	l := h.startLogin("laptop")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	if _, err := h.c.WaitLogin(ctx, l.start.WaitSecret); !errors.Is(err, context.Canceled) {
		t.Errorf("WaitLogin after cancel = %v, want context.Canceled", err)
	}
}

func TestLoginRefusedWithoutSSO(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	_, err := h.c.StartLogin(ctx, netip.Prefix{}, wire.LoginStartRequest{PublicKey: testKey()})
	wantCode(t, "StartLogin", err, wire.CodeSSODisabled)
	_, err = h.c.LoginPage("x")
	wantCode(t, "LoginPage", err, wire.CodeSSODisabled)
	_, err = h.c.Callback(ctx, "s", "c")
	wantCode(t, "Callback", err, wire.CodeSSODisabled)
	_, err = h.c.WaitLogin(ctx, "w")
	wantCode(t, "WaitLogin", err, wire.CodeSSODisabled)
}

func TestPendingLoginsBounded(t *testing.T) {
	idp := newFakeIdP()
	h := newHarnessWith(t, func(c *Config) { c.IdentityProvider, c.MaxPendingLogins = idp, 3 })
	ctx := context.Background()
	for range 3 {
		h.startLogin("laptop")
	}
	_, err := h.c.StartLogin(ctx, netip.Prefix{}, wire.LoginStartRequest{PublicKey: testKey()})
	wantCode(t, "StartLogin past the bound", err, wire.CodeRateLimited)
	h.clock.Advance(wire.LoginTTL)
	h.startLogin("laptop") // the expired ones made room
}

func TestLoginKeyTaken(t *testing.T) {
	h, _ := newSSOHarness(t)
	e := h.enroll(wire.RoleClient, "desk")
	_, err := h.c.StartLogin(context.Background(), netip.Prefix{}, wire.LoginStartRequest{PublicKey: e.Node.PublicKey})
	wantCode(t, "StartLogin with an enrolled key", err, wire.CodeConflict)
}

func TestNodeName(t *testing.T) {
	for _, tt := range []struct{ host, want string }{
		{"", "laptop"},
		{"alice-laptop", "alice-laptop"},
		{"Alice's MacBook Pro.local", "alice-s-macbook-pro"},
		{"WS01.corp.example.com", "ws01"},
		{"--x--", "x"},
		{"ünïcode", "n-code"},
		{"日本", "laptop"},
		{strings.Repeat("a", 100), strings.Repeat("a", wire.MaxNameLen-5)},
		{strings.Repeat("a", 57) + "-b", strings.Repeat("a", 57)},
	} {
		got := nodeName(tt.host)
		if got != tt.want {
			t.Errorf("nodeName(%q) = %q, want %q", tt.host, got, tt.want)
		}
		if err := wire.ValidateName(got + "-1000"); err != nil {
			t.Errorf("nodeName(%q) = %q leaves no room for a suffix: %v", tt.host, got, err)
		}
	}
}

func TestLogout(t *testing.T) {
	h, idp := newSSOHarness(t)
	ctx := context.Background()
	e := h.loginAs(idp, "laptop", alice())
	conn := newFakeConn()
	done := h.serve(e.Node, conn)
	nextNetMap(t, conn)
	office := h.enroll(wire.RoleConnector, "office")
	wantCode(t, "connector Logout", h.c.Logout(ctx, office.Node), wire.CodeUnauthorized)
	if err := h.c.Logout(ctx, e.Node); err != nil {
		t.Fatal(err)
	}
	if _, err := h.c.AuthenticateNode(e.Credential); err == nil {
		t.Errorf("the credential still works after logout")
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrNodeRemoved) {
			t.Errorf("stream ended with %v, want ErrNodeRemoved", err)
		}
	case <-time.After(2 * time.Second):
		t.Errorf("the stream did not end on logout")
	}
	// The user stays: they log in again.
	if u := h.c.Users(); len(u) != 1 || len(u[0].Nodes) != 0 {
		t.Errorf("Users after logout = %+v", u)
	}
}

func TestPendingLoginsPerSource(t *testing.T) {
	h, _ := newSSOHarness(t)
	ctx := context.Background()
	office, other := netip.MustParsePrefix("198.51.100.7/32"), netip.MustParsePrefix("2001:db8:1:2::/64")
	for i := range MaxPendingLoginsPerSource {
		if _, err := h.c.StartLogin(ctx, office, wire.LoginStartRequest{PublicKey: testKey()}); err != nil {
			t.Fatalf("login %d from one source: %v", i+1, err)
		}
	}
	_, err := h.c.StartLogin(ctx, office, wire.LoginStartRequest{PublicKey: testKey()})
	wantCode(t, "StartLogin past the source's bound", err, wire.CodeRateLimited)
	if _, err := h.c.StartLogin(ctx, other, wire.LoginStartRequest{PublicKey: testKey()}); err != nil {
		t.Errorf("StartLogin from another source: %v", err)
	}
	h.clock.Advance(wire.LoginTTL)
	if _, err := h.c.StartLogin(ctx, office, wire.LoginStartRequest{PublicKey: testKey()}); err != nil {
		t.Errorf("StartLogin once the source's logins expired: %v", err)
	}
}
