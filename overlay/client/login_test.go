package client_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrennet/warren/overlay/client"
	"github.com/warrennet/warren/overlay/coord"
	"github.com/warrennet/warren/overlay/coord/sso"
	"github.com/warrennet/warren/overlay/ctl"
	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/test/coordtest"
)

// personIdP is the identity provider at its interface with the
// coordinator: whoever comes back with a code is the person the test
// registered for it. The provider's own checks are the coordinator's and
// sso's tests' business; the laptop never talks to it.
type personIdP struct {
	mu     sync.Mutex // guards byCode
	byCode map[string]sso.Identity
}

func (p *personIdP) AuthURL(state, _, _ string) string {
	return "https://idp.example.com/authorize?" + url.Values{"state": {state}}.Encode()
}

func (p *personIdP) Exchange(_ context.Context, code, _, _ string) (sso.Identity, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	id, ok := p.byCode[code]
	if !ok {
		return sso.Identity{}, sso.ErrRefused
	}
	return id, nil
}

func (p *personIdP) Refresh(context.Context, string) (sso.Identity, error) {
	return sso.Identity{}, sso.ErrRevoked
}

var alice = sso.Identity{Issuer: "https://idp.example.com", Subject: "a", Email: "alice@example.com"}

// browse does what a person's browser does with a login link: open it,
// follow the coordinator's redirect to the provider, and come back to the
// callback with a code the provider vouches for as who (nil: a code it
// refuses). It returns the callback's status.
func browse(t *testing.T, idp *personIdP, coordURL, link string, who *sso.Identity) int {
	t.Helper()
	hc := &http.Client{
		// The coordinator's certificate is self-signed (the laptop pins
		// it); the browser here does not check it.
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}
	defer hc.CloseIdleConnections()
	if !strings.HasPrefix(link, coordURL+wire.PathLoginPage+"/") {
		t.Fatalf("login link %q is not the coordinator's", link)
	}
	resp, err := hc.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	to, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode/100 != 3 || !strings.HasPrefix(to.String(), "https://idp.example.com/") {
		t.Fatalf("the login page answered %s to %q", resp.Status, resp.Header.Get("Location"))
	}
	code := "code-" + to.Query().Get("state")[:8]
	if who != nil {
		idp.mu.Lock()
		idp.byCode[code] = *who
		idp.mu.Unlock()
	}
	resp, err = hc.Get(coordURL + wire.PathOIDCCallback + "?" + url.Values{"code": {code}, "state": {to.Query().Get("state")}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// ssoLaptop is a real coordinator with single sign-on and a laptop engine
// that is not enrolled. The coordinator's clock is the test's to move.
type ssoLaptop struct {
	s     *coordtest.Server
	idp   *personIdP
	eng   *client.Engine
	clock atomic.Int64 // seconds added to the real time
}

func newSSOLaptop(t *testing.T) *ssoLaptop {
	t.Helper()
	l := &ssoLaptop{idp: &personIdP{byCode: map[string]sso.Identity{}}}
	l.s = coordtest.Start(t, coordtest.Options{
		Now:              func() time.Time { return time.Now().Add(time.Duration(l.clock.Load()) * time.Second) },
		IdentityProvider: func(string) coord.IdentityProvider { return l.idp },
	})
	var err error
	l.eng, err = client.New(client.Config{StateDir: t.TempDir(), Hostname: "alice-laptop", Platform: &fakePlatform{addr: netip.MustParseAddr("100.96.0.99")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.eng.Down(context.Background()) })
	return l
}

// login runs call (Up or Login) and, when it shows the login link, logs
// in as who in the "browser". It returns the progress lines and call's
// error.
func (l *ssoLaptop) login(t *testing.T, call func(context.Context, ctl.UpRequest, func(ctl.Progress)) error, req ctl.UpRequest, who *sso.Identity) ([]ctl.Progress, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	links := make(chan string, 1)
	var steps []ctl.Progress
	done := make(chan error, 1)
	go func() {
		done <- call(ctx, req, func(p ctl.Progress) {
			steps = append(steps, p)
			if p.LoginURL != "" {
				links <- p.LoginURL
			}
		})
	}()
	select {
	case link := <-links:
		if status := browse(t, l.idp, l.s.URL, link, who); (status == http.StatusOK) != (who != nil) {
			t.Errorf("the callback answered %d", status)
		}
	case err := <-done:
		return steps, err
	}
	return steps, <-done
}

func (l *ssoLaptop) nodes() []string {
	var names []string
	for _, n := range l.s.Coord.Nodes() {
		names = append(names, n.Name+"/"+n.User)
	}
	slices.Sort(names)
	return names
}

// TestLoginFlow: `warren up --coordinator URL` on a laptop that is not
// enrolled logs in through the real coordinator and brings the tunnel up
// as the person; `warren login` logs out and in again at the coordinator
// it remembers; `warren logout` removes the node there and forgets it
// here.
func TestLoginFlow(t *testing.T) {
	ctx := context.Background()
	l := newSSOLaptop(t)
	steps, err := l.login(t, l.eng.Up, ctl.UpRequest{Coordinator: l.s.URL, Pin: l.s.Pin}, &alice)
	if err != nil {
		t.Fatalf("up: %v (steps %+v)", err, steps)
	}
	var shown *ctl.Progress
	for i := range steps {
		if steps[i].LoginURL != "" {
			shown = &steps[i]
		}
	}
	if shown == nil || len(shown.Code) != 9 || shown.Code[4] != '-' || !strings.Contains(shown.Message, shown.LoginURL) {
		t.Errorf("the login step = %+v, want the link and a code XXXX-XXXX", shown)
	}
	st := l.eng.Status(ctx)
	if !st.Enrolled || st.State != ctl.StateUp || st.Node.User != alice.Email || st.Node.Name != "alice-laptop" {
		t.Errorf("after up: %+v", st)
	}
	if got := l.nodes(); !slices.Equal(got, []string{"alice-laptop/alice@example.com"}) {
		t.Errorf("coordinator nodes = %v", got)
	}
	// Up again (after down) at another coordinator: the node stays where
	// it is.
	if err := l.eng.Down(ctx); err != nil {
		t.Fatal(err)
	}
	var again []string
	if err := l.eng.Up(ctx, ctl.UpRequest{Coordinator: "https://other.example.com"}, func(p ctl.Progress) { again = append(again, p.Message) }); err != nil || !slices.Contains(again, "already enrolled at "+l.s.URL+": --coordinator is ignored (warren login --coordinator URL moves this machine)") {
		t.Errorf("up at another coordinator = %v, %q", err, again)
	}

	// warren login: logged out (the node removed), then in again at the
	// coordinator remembered from the first login.
	steps, err = l.login(t, l.eng.Login, ctl.UpRequest{}, &alice)
	if err != nil {
		t.Fatalf("login: %v (steps %+v)", err, steps)
	}
	if !slices.ContainsFunc(steps, func(p ctl.Progress) bool {
		return p.Message == "logged out: node alice-laptop removed at the coordinator"
	}) {
		t.Errorf("login steps lack the logout: %+v", steps)
	}
	if got := l.nodes(); !slices.Equal(got, []string{"alice-laptop/alice@example.com"}) {
		t.Errorf("coordinator nodes after login = %v, want one (the old one removed)", got)
	}
	if st := l.eng.Status(ctx); !st.Enrolled || st.State != ctl.StateUp {
		t.Errorf("after login: %+v", st)
	}

	res, err := l.eng.Logout(ctx)
	if err != nil || !res.Removed || res.Node != "alice-laptop" {
		t.Errorf("logout = %+v, %v", res, err)
	}
	if got := l.nodes(); len(got) != 0 {
		t.Errorf("coordinator nodes after logout = %v", got)
	}
	if st := l.eng.Status(ctx); st.Enrolled || st.State != ctl.StateDown {
		t.Errorf("after logout: %+v", st)
	}
	if _, err := l.eng.Logout(ctx); err == nil || err.Error() != "this machine is not enrolled: nothing to log out" {
		t.Errorf("second logout = %v", err)
	}
	// Not enrolled, no token and no coordinator: one line saying how.
	if err := l.eng.Up(ctx, ctl.UpRequest{}, func(ctl.Progress) {}); err == nil || !strings.HasPrefix(err.Error(), "this machine is not enrolled yet: log in with warren up --coordinator URL") {
		t.Errorf("up without anything = %v", err)
	}
}

// TestLoginEnds: a login that expires, one the provider refuses and one
// given up (ctx) leave the laptop not enrolled, each with one line.
func TestLoginEnds(t *testing.T) {
	ctx := context.Background()
	l := newSSOLaptop(t)
	req := ctl.UpRequest{Coordinator: l.s.URL, Pin: l.s.Pin}

	// A coordinator without single sign-on says so, in one line.
	plain := coordtest.Start(t, coordtest.Options{})
	if err := l.eng.Up(ctx, ctl.UpRequest{Coordinator: plain.URL, Pin: plain.Pin}, func(ctl.Progress) {}); err == nil || err.Error() != "the coordinator has no single sign-on: enroll with a token instead (warren up --token-file FILE)" {
		t.Errorf("login without sso = %v", err)
	}

	// Nobody logs in in time: the coordinator's clock passes the link's
	// life as the link is shown.
	var steps []string
	err := l.eng.Up(ctx, req, func(p ctl.Progress) {
		steps = append(steps, p.Message)
		if p.LoginURL != "" {
			l.clock.Add(int64((wire.LoginTTL + time.Minute) / time.Second))
		}
	})
	if err == nil || err.Error() != "the login link expired before the login finished: run warren up again" {
		t.Errorf("expired login = %v (steps %q)", err, steps)
	}
	l.clock.Store(0)

	// The person gives up: the CLI's request ends.
	cctx, cancel := context.WithCancel(ctx)
	err = l.eng.Up(cctx, req, func(p ctl.Progress) {
		if p.LoginURL != "" {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("login given up = %v", err)
	}

	// The provider refuses the person.
	if _, err := l.login(t, l.eng.Up, req, nil); err == nil || !strings.HasPrefix(err.Error(), "the login was refused: ") || strings.Contains(err.Error(), "\n") {
		t.Errorf("refused login = %v", err)
	}
	if st := l.eng.Status(ctx); st.Enrolled || st.State != ctl.StateDown {
		t.Errorf("after failed logins: enrolled %v, state %s", st.Enrolled, st.State)
	}
	if got := l.nodes(); len(got) != 0 {
		t.Errorf("coordinator nodes = %v", got)
	}
}

// TestLogoutUnreachable: a logout while the coordinator cannot be reached
// still forgets the node here, and says the coordinator was not told.
func TestLogoutUnreachable(t *testing.T) {
	ctx := context.Background()
	l := newSSOLaptop(t)
	if _, err := l.login(t, l.eng.Up, ctl.UpRequest{Coordinator: l.s.URL, Pin: l.s.Pin}, &alice); err != nil {
		t.Fatal(err)
	}
	l.s.Close()
	res, err := l.eng.Logout(ctx)
	if err != nil || res.Removed || !strings.HasPrefix(res.Error, "cannot reach the coordinator at "+l.s.URL) {
		t.Errorf("logout = %+v, %v; want done here, with the coordinator unreachable", res, err)
	}
	if st := l.eng.Status(ctx); st.Enrolled || st.State != ctl.StateDown {
		t.Errorf("after logout: enrolled %v, state %s", st.Enrolled, st.State)
	}
}
