package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/warrennet/warren/overlay/coord"
	"github.com/warrennet/warren/overlay/coord/sso"
	"github.com/warrennet/warren/overlay/coordclient"
	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/test/coordtest"
	"github.com/warrennet/warren/test/oidctest"
)

// ssoFixture is a real coordinator over TLS whose identity provider is
// the real OpenID Provider of test/oidctest, through the coordinator's
// own relying party (sso.Provider), and a browser trusting both.
type ssoFixture struct {
	*coordtest.Server
	idp     *oidctest.Provider
	browser *oidctest.Browser
	clock   *fakeClock
	login   *coordclient.Login
}

// newSSOFixture registers the coordinator at the provider as client
// "warren" (and a client "other" with the same redirect URL). wrap, if
// set, wraps the transport the coordinator reaches the provider with.
func newSSOFixture(t *testing.T, wrap func(http.RoundTripper) http.RoundTripper) *ssoFixture {
	t.Helper()
	idp := oidctest.Start(t)
	clk := &fakeClock{now: time.Now().UTC()}
	s := coordtest.Start(t, coordtest.Options{Now: clk.Now, IdentityProvider: func(url string) coord.IdentityProvider {
		redirect := url + wire.PathOIDCCallback
		idp.AddClient(oidctest.Client{ID: "warren", Secret: "s3cret", RedirectURLs: []string{redirect}, ClaimsInIDToken: true})
		idp.AddClient(oidctest.Client{ID: "other", Secret: "other-s3cret", RedirectURLs: []string{redirect}, ClaimsInIDToken: true})
		hc := idp.HTTPClient()
		if wrap != nil {
			hc.Transport = wrap(hc.Transport)
		}
		p, err := sso.New(context.Background(), sso.Config{Issuer: idp.Issuer, ClientID: "warren", ClientSecret: "s3cret",
			RedirectURL: redirect, HTTPClient: hc})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}})
	l, err := coordclient.NewLogin(s.URL, s.Pin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return &ssoFixture{Server: s, idp: idp, browser: idp.NewBrowser(s.Certificate), clock: clk, login: l}
}

// start starts a login as `warren up` does, for a fresh key.
func (f *ssoFixture) start(t *testing.T, hostname string) *wire.LoginStartResponse {
	t.Helper()
	var k wire.Key
	copy(k[:], hostname)
	k[31] = 0x44
	resp, err := f.login.StartLogin(context.Background(), wire.LoginStartRequest{PublicKey: k, Hostname: hostname})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// logIn opens the link and logs in at the provider as email; it returns
// the page the browser ends on.
func (f *ssoFixture) logIn(t *testing.T, link, email string) *oidctest.Page {
	t.Helper()
	page, err := f.browser.Login(context.Background(), link, email, oidctest.Password(email))
	if err != nil {
		t.Fatalf("logging in as %s: %v", email, err)
	}
	return page
}

// wait collects the login's enrollment as the laptop does, within 10 s
// (a login that never ends would otherwise be waited on for good).
func (f *ssoFixture) wait(secret string) (*wire.EnrollResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return f.login.WaitLogin(ctx, secret)
}

func waitCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	var we *wire.Error
	if !errors.As(err, &we) || we.Code != code {
		t.Errorf("%s: %v, want %s", what, err, code)
	}
}

// TestSSOLoginEnrollsAlice: the laptop starts a login, alice logs in at
// the provider in a browser, the laptop is enrolled as hers, and her
// groups claim puts her in group:eng.
func TestSSOLoginEnrollsAlice(t *testing.T) {
	f := newSSOFixture(t, nil)
	start := f.start(t, "alice-laptop")
	page := f.logIn(t, start.URL, oidctest.Alice)
	if page.URL.Path != wire.PathOIDCCallback || page.StatusCode != http.StatusOK {
		t.Fatalf("ended at %s with %d: %s", page.URL, page.StatusCode, page.Body)
	}
	want := "Logged in as alice@example.com; machine alice-laptop (code " + start.Code + ") is enrolled as alice-laptop."
	if !strings.Contains(page.Body, want) {
		t.Errorf("callback page %q lacks %q", page.Body, want)
	}
	if page.Header.Get("Referrer-Policy") != "no-referrer" || page.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("callback page headers %v", page.Header)
	}
	e, err := f.wait(start.WaitSecret)
	if err != nil {
		t.Fatal(err)
	}
	if e.Node.User != oidctest.Alice || e.Node.Name != "alice-laptop" || e.Node.Role != wire.RoleClient {
		t.Errorf("enrolled %+v", e.Node)
	}
	users := f.Coord.Users()
	if len(users) != 1 || users[0].Email != oidctest.Alice || strings.Join(users[0].Groups, ",") != "eng" {
		t.Errorf("Users = %+v", users)
	}
	// group:eng names her, for policy why and her grants.
	f.Enroll(t, wire.RoleConnector, "office", wire.Key{9, 31: 1})
	f.AddRoute(t, "10.1.0.0/16", "office")
	f.AddHost(t, "db", "10.1.0.5")
	f.SetPolicy(t, `{"rules": [{"from": ["group:eng"], "to": ["db:5432"]}]}`)
	d, err := f.Coord.PolicyWhy(oidctest.Alice, "db:5432")
	if err != nil || !d.Allow || !strings.Contains(d.RuleText, "group:eng") {
		t.Errorf("PolicyWhy(alice, db:5432) = %+v, %v; want allowed by the group:eng rule", d, err)
	}
	if d, err := f.Coord.PolicyWhy(oidctest.Alice, "db:22"); err != nil || d.Allow {
		t.Errorf("PolicyWhy(alice, db:22) = %+v, %v; want denied", d, err)
	}
}

// TestSSOLoginLinkSingleUse: a login link opened again, or after ten
// minutes, is refused with a page; the credential is given once.
func TestSSOLoginLinkSingleUse(t *testing.T) {
	f := newSSOFixture(t, nil)
	ctx := context.Background()
	start := f.start(t, "laptop")
	f.logIn(t, start.URL, oidctest.Alice)
	page, err := f.browser.Get(ctx, start.URL)
	if err != nil {
		t.Fatal(err)
	}
	if page.StatusCode != http.StatusGone || !strings.Contains(page.Body, "already been used") {
		t.Errorf("replayed link: %d %q; want 410 saying it was used", page.StatusCode, page.Body)
	}
	if _, err := f.wait(start.WaitSecret); err != nil {
		t.Fatal(err)
	}
	_, err = f.wait(start.WaitSecret)
	waitCode(t, "collecting the credential again", err, wire.CodeLoginUsed)

	late := f.start(t, "other")
	f.clock.Advance(wire.LoginTTL)
	page, err = f.browser.Get(ctx, late.URL)
	if err != nil {
		t.Fatal(err)
	}
	if page.StatusCode != http.StatusGone || !strings.Contains(page.Body, "expired") {
		t.Errorf("expired link: %d %q; want 410 saying it expired", page.StatusCode, page.Body)
	}
	_, err = f.wait(late.WaitSecret)
	waitCode(t, "waiting on an expired login", err, wire.CodeLoginExpired)
	if len(f.Coord.Nodes()) != 1 {
		t.Errorf("nodes %+v; want only the first laptop", f.Coord.Nodes())
	}
	// A callback replayed by hand (the browser's last URL) is refused too.
	first := f.start(t, "third")
	end := f.logIn(t, first.URL, oidctest.Bob)
	page, err = f.browser.Get(ctx, end.URL.String())
	if err != nil {
		t.Fatal(err)
	}
	if page.StatusCode != http.StatusGone {
		t.Errorf("replayed callback: %d %q; want 410", page.StatusCode, page.Body)
	}
}

// TestSSOLoginRefused: an unverified e-mail, an ID token for another
// audience and one with a bad signature end the login at the callback,
// and the laptop hears so.
func TestSSOLoginRefused(t *testing.T) {
	for _, tt := range []struct {
		name  string
		email string
		// wrap is the coordinator's transport to the provider; asOther
		// makes the browser ask for a code for client "other".
		wrap    func(http.RoundTripper) http.RoundTripper
		asOther bool
		want    string
	}{
		{"unverified e-mail", oidctest.Carol, nil, false, "not verified"},
		{"wrong audience", oidctest.Alice, func(b http.RoundTripper) http.RoundTripper {
			return tokenRequestAs{base: b, id: "other", secret: "other-s3cret"}
		}, true, `expected audience &#34;warren&#34;`},
		{"bad signature", oidctest.Alice, func(b http.RoundTripper) http.RoundTripper { return tamperIDToken{base: b} }, false, "signature"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newSSOFixture(t, tt.wrap)
			if tt.asOther {
				// The provider issues the code, and so the ID token, to
				// the other client; the coordinator redeems it.
				f.browser.Client.CheckRedirect = func(req *http.Request, via []*http.Request) error {
					if q := req.URL.Query(); q.Get("client_id") == "warren" {
						q.Set("client_id", "other")
						req.URL.RawQuery = q.Encode()
					}
					return nil
				}
			}
			start := f.start(t, "laptop")
			page := f.logIn(t, start.URL, tt.email)
			if page.URL.Path != wire.PathOIDCCallback || page.StatusCode != http.StatusForbidden || !strings.Contains(page.Body, tt.want) {
				t.Errorf("ended at %s: %d %q; want the callback's 403 saying %q", page.URL.Path, page.StatusCode, page.Body, tt.want)
			}
			_, err := f.wait(start.WaitSecret)
			waitCode(t, "WaitLogin", err, wire.CodeLoginRefused)
			if len(f.Coord.Nodes()) != 0 || len(f.Coord.Users()) != 0 {
				t.Errorf("a refused login left nodes %+v, users %+v", f.Coord.Nodes(), f.Coord.Users())
			}
		})
	}
}

// tokenRequestAs authenticates token requests as another client.
type tokenRequestAs struct {
	base       http.RoundTripper
	id, secret string
}

func (a tokenRequestAs) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Path == "/oauth/token" {
		req = req.Clone(req.Context())
		req.SetBasicAuth(url.QueryEscape(a.id), url.QueryEscape(a.secret))
	}
	return a.base.RoundTrip(req)
}

// tamperIDToken flips one bit of the signature of the ID token in the
// provider's real token response.
type tamperIDToken struct{ base http.RoundTripper }

func (tt tamperIDToken) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := tt.base.RoundTrip(req)
	if err != nil || req.URL.Path != "/oauth/token" || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, err
	}
	parts := strings.Split(m["id_token"].(string), ".")
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, err
	}
	sig[len(sig)/2] ^= 1
	parts[2] = base64.RawURLEncoding.EncodeToString(sig)
	m["id_token"] = strings.Join(parts, ".")
	body, _ = json.Marshal(m)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Del("Content-Length")
	return resp, nil
}

// TestSSODisabledUserLosesAccess: alice is disabled at the provider; at
// the next revalidation her node is removed and its control stream ends.
func TestSSODisabledUserLosesAccess(t *testing.T) {
	f := newSSOFixture(t, nil)
	ctx := context.Background()
	start := f.start(t, "laptop")
	f.logIn(t, start.URL, oidctest.Alice)
	bobStart := f.start(t, "bobs")
	f.browser = f.idp.NewBrowser(f.Certificate) // a new browser: no session of alice's
	f.logIn(t, bobStart.URL, oidctest.Bob)
	e, err := f.wait(start.WaitSecret)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.wait(bobStart.WaitSecret); err != nil {
		t.Fatal(err)
	}

	// Her laptop's control stream.
	ended := make(chan error, 1)
	sess, err := coordclient.NewSession(coordclient.SessionConfig{URL: f.URL, Pin: f.Pin, Credential: e.Credential,
		Apply: func(context.Context, *wire.NetMap) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { ended <- sess.Run(sctx) }()

	// Still accepted: nothing changes.
	if err := f.Coord.RevalidateUsers(ctx); err != nil {
		t.Fatal(err)
	}
	if len(f.Coord.Nodes()) != 2 {
		t.Fatalf("nodes after a round with everyone accepted: %+v", f.Coord.Nodes())
	}
	f.idp.Disable(oidctest.Alice)
	if err := f.Coord.RevalidateUsers(ctx); err != nil {
		t.Fatal(err)
	}
	if n := f.Coord.Nodes(); len(n) != 1 || n[0].User != oidctest.Bob {
		t.Errorf("nodes after alice was disabled: %+v; want bob's only", n)
	}
	select {
	case err := <-ended:
		if !errors.Is(err, coordclient.ErrRevoked) {
			t.Errorf("alice's session ended with %v, want ErrRevoked", err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("alice's control stream did not end")
	}
	u := f.Coord.Users()[0]
	if u.Email != oidctest.Alice || !u.Disabled || u.Reason == "" {
		t.Errorf("alice after revalidation: %+v; want disabled with a reason", u)
	}
}
