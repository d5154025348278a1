package sso_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/oauth2"

	"github.com/warrennet/warren/overlay/coord/sso"
	"github.com/warrennet/warren/test/oidctest"
)

// The clients registered at the test provider: the coordinator's, and
// another relying party's.
const (
	warrenID, warrenSecret = "warren", "warren-secret"
	otherID, otherSecret   = "other-app", "other-secret"
	callbackPath           = "/oidc/callback"
)

type env struct {
	op       *oidctest.Provider
	callback *httptest.Server
}

// setup starts a provider with both clients (redirecting to one callback
// server that answers 200) and, with claimsInIDToken, e-mail claims in
// the ID token; without, they come from userinfo only.
func setup(t *testing.T, claimsInIDToken bool) *env {
	t.Helper()
	cb := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "back at the relying party")
	}))
	t.Cleanup(cb.Close)
	redirect := []string{cb.URL + callbackPath}
	op := oidctest.Start(t,
		oidctest.Client{ID: warrenID, Secret: warrenSecret, RedirectURLs: redirect, ClaimsInIDToken: claimsInIDToken},
		oidctest.Client{ID: otherID, Secret: otherSecret, RedirectURLs: redirect, ClaimsInIDToken: claimsInIDToken},
	)
	return &env{op: op, callback: cb}
}

func (e *env) config(id, secret string) sso.Config {
	return sso.Config{
		Issuer:       e.op.Issuer,
		ClientID:     id,
		ClientSecret: secret,
		RedirectURL:  e.callback.URL + callbackPath,
		HTTPClient:   e.op.HTTPClient(),
	}
}

func (e *env) rp(t *testing.T, cfg sso.Config) *sso.Provider {
	t.Helper()
	p, err := sso.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// login is a person logging in through rp's authorization URL in a
// browser; it returns the code the provider sent to the callback and the
// login's verifier and nonce.
func (e *env) login(t *testing.T, rp *sso.Provider, email string) (code, verifier, nonce string) {
	t.Helper()
	state, nonce, verifier := random(), random(), oauth2.GenerateVerifier()
	b := e.op.NewBrowser(e.callback.Certificate())
	page, err := b.Login(t.Context(), rp.AuthURL(state, nonce, verifier), email, oidctest.Password(email))
	if err != nil {
		t.Fatal(err)
	}
	q := page.URL.Query()
	if page.URL.Path != callbackPath || q.Get("code") == "" {
		t.Fatalf("the browser ended at %s (%d), want the callback with a code", page.URL, page.StatusCode)
	}
	if got := q.Get("state"); got != state {
		t.Fatalf("state: got %q, want %q", got, state)
	}
	return q.Get("code"), verifier, nonce
}

func random() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

var ignoreTokens = cmpopts.IgnoreFields(sso.Identity{}, "RefreshToken", "Expiry")

// TestExchange logs each user in, with e-mail claims in the ID token and
// from userinfo only.
func TestExchange(t *testing.T) {
	tests := []struct {
		name    string
		email   string
		domains []string
		want    sso.Identity // Issuer filled in
		wantErr string       // a refusal's text
	}{
		{name: "alice", email: oidctest.Alice, want: sso.Identity{Subject: "alice", Email: "alice@example.com", Groups: []string{"eng"}}},
		{name: "bob, domain allowed", email: oidctest.Bob, domains: []string{"EXAMPLE.com"}, want: sso.Identity{Subject: "bob", Email: "bob@example.com", Groups: []string{"ops"}}},
		{name: "dave, no groups", email: oidctest.Dave, want: sso.Identity{Subject: "dave", Email: "dave@other.org"}},
		{name: "carol, e-mail not verified", email: oidctest.Carol, wantErr: "login refused: the identity provider has not verified carol@example.com"},
		{name: "dave, domain not allowed", email: oidctest.Dave, domains: []string{"example.com"}, wantErr: "login refused: other.org is not an allowed domain"},
	}
	for _, inIDToken := range []bool{false, true} {
		e := setup(t, inIDToken)
		for _, tt := range tests {
			t.Run(tt.name+"/claimsInIDToken="+strconv.FormatBool(inIDToken), func(t *testing.T) {
				cfg := e.config(warrenID, warrenSecret)
				cfg.AllowedDomains = tt.domains
				rp := e.rp(t, cfg)
				code, verifier, nonce := e.login(t, rp, tt.email)
				got, err := rp.Exchange(t.Context(), code, verifier, nonce)
				if tt.wantErr != "" {
					if !errors.Is(err, sso.ErrRefused) || err.Error() != tt.wantErr {
						t.Fatalf("got %+v, %v; want the refusal %q", got, err, tt.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				want := tt.want
				want.Issuer = e.op.Issuer
				if diff := cmp.Diff(want, got, ignoreTokens); diff != "" {
					t.Errorf("identity (-want +got):\n%s", diff)
				}
				if got.RefreshToken == "" || got.Expiry.Before(time.Now()) {
					t.Errorf("got refresh token %q, expiry %v; want a token and a future expiry", got.RefreshToken, got.Expiry)
				}
			})
		}
	}
}

// TestExchangeRefused covers logins the provider or the ID token's checks
// refuse.
func TestExchangeRefused(t *testing.T) {
	e := setup(t, false)
	rp := e.rp(t, e.config(warrenID, warrenSecret))

	t.Run("nonce mismatch", func(t *testing.T) {
		code, verifier, _ := e.login(t, rp, oidctest.Alice)
		_, err := rp.Exchange(t.Context(), code, verifier, random())
		wantRefused(t, err, "nonce mismatch")
	})
	t.Run("wrong PKCE verifier", func(t *testing.T) {
		code, _, nonce := e.login(t, rp, oidctest.Alice)
		_, err := rp.Exchange(t.Context(), code, oauth2.GenerateVerifier(), nonce)
		wantRefused(t, err, "the identity provider refused the login: invalid_grant")
	})
	t.Run("code used twice", func(t *testing.T) {
		code, verifier, nonce := e.login(t, rp, oidctest.Alice)
		if _, err := rp.Exchange(t.Context(), code, verifier, nonce); err != nil {
			t.Fatal(err)
		}
		_, err := rp.Exchange(t.Context(), code, verifier, nonce)
		wantRefused(t, err, "the identity provider refused the login: invalid_grant")
	})
	t.Run("wrong audience", func(t *testing.T) {
		// The code is issued to the other client and redeemed with its
		// credentials: the provider answers with a genuine ID token for
		// the other client, which the coordinator's relying party is
		// handed (a token endpoint answering for another client).
		other := e.rp(t, e.config(otherID, otherSecret))
		code, verifier, nonce := e.login(t, other, oidctest.Alice)
		cfg := e.config(warrenID, warrenSecret)
		cfg.HTTPClient = e.op.HTTPClient()
		cfg.HTTPClient.Transport = tokenRequestAs{base: cfg.HTTPClient.Transport, id: otherID, secret: otherSecret}
		_, err := e.rp(t, cfg).Exchange(t.Context(), code, verifier, nonce)
		wantRefused(t, err, `expected audience "warren"`)
	})
	t.Run("bad signature", func(t *testing.T) {
		code, verifier, nonce := e.login(t, rp, oidctest.Alice)
		cfg := e.config(warrenID, warrenSecret)
		cfg.HTTPClient = e.op.HTTPClient()
		cfg.HTTPClient.Transport = tamperIDToken{base: cfg.HTTPClient.Transport}
		_, err := e.rp(t, cfg).Exchange(t.Context(), code, verifier, nonce)
		wantRefused(t, err, "signature")
	})
}

func wantRefused(t *testing.T, err error, substr string) {
	t.Helper()
	if !errors.Is(err, sso.ErrRefused) || !strings.Contains(err.Error(), substr) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("got %v; want a one-line refusal containing %q", err, substr)
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

// tamperIDToken alters one bit of the signature of the ID token in the
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

// TestRefresh re-validates people: a change of groups at the provider is
// seen, the refresh token rotates (the old one is then revoked), and a
// disabled user is revoked.
func TestRefresh(t *testing.T) {
	for _, inIDToken := range []bool{false, true} {
		t.Run("claimsInIDToken="+strconv.FormatBool(inIDToken), func(t *testing.T) {
			e := setup(t, inIDToken)
			rp := e.rp(t, e.config(warrenID, warrenSecret))
			code, verifier, nonce := e.login(t, rp, oidctest.Alice)
			alice, err := rp.Exchange(t.Context(), code, verifier, nonce)
			if err != nil {
				t.Fatal(err)
			}
			code, verifier, nonce = e.login(t, rp, oidctest.Bob)
			bob, err := rp.Exchange(t.Context(), code, verifier, nonce)
			if err != nil {
				t.Fatal(err)
			}

			e.op.SetGroups(oidctest.Alice, "eng", "admins", "eng")
			got, err := rp.Refresh(t.Context(), alice.RefreshToken)
			if err != nil {
				t.Fatal(err)
			}
			want := sso.Identity{Issuer: e.op.Issuer, Subject: "alice", Email: "alice@example.com", Groups: []string{"admins", "eng"}}
			if diff := cmp.Diff(want, got, ignoreTokens); diff != "" {
				t.Errorf("refreshed identity (-want +got):\n%s", diff)
			}
			if got.RefreshToken == "" || got.RefreshToken == alice.RefreshToken {
				t.Errorf("refresh token %q after refreshing %q: want a new one (the provider rotates)", got.RefreshToken, alice.RefreshToken)
			}
			if _, err := rp.Refresh(t.Context(), alice.RefreshToken); !errors.Is(err, sso.ErrRevoked) {
				t.Errorf("refreshing with the rotated-out token: got %v, want ErrRevoked", err)
			}
			if _, err := rp.Refresh(t.Context(), got.RefreshToken); err != nil {
				t.Errorf("refreshing with the new token: %v", err)
			}

			e.op.Disable(oidctest.Bob)
			if _, err := rp.Refresh(t.Context(), bob.RefreshToken); !errors.Is(err, sso.ErrRevoked) || strings.Contains(err.Error(), "\n") {
				t.Errorf("refreshing a disabled user: got %v, want a one-line ErrRevoked", err)
			}
		})
	}
}

// TestRefreshNotRevoked: a provider that refuses the coordinator's
// client, or cannot be reached, says nothing about the person.
func TestRefreshNotRevoked(t *testing.T) {
	e := setup(t, false)
	rp := e.rp(t, e.config(warrenID, warrenSecret))
	code, verifier, nonce := e.login(t, rp, oidctest.Alice)
	alice, err := rp.Exchange(t.Context(), code, verifier, nonce)
	if err != nil {
		t.Fatal(err)
	}
	// The coordinator's own client refused (a secret changed at the
	// provider): the person is not revoked.
	cfg := e.config(warrenID, "not-the-secret")
	_, err = e.rp(t, cfg).Refresh(t.Context(), alice.RefreshToken)
	if err == nil || errors.Is(err, sso.ErrRevoked) || !strings.Contains(err.Error(), "invalid_client") {
		t.Errorf("refresh with a wrong client secret: got %v, want invalid_client, not ErrRevoked", err)
	}

	e.op.Close()
	_, err = rp.Refresh(t.Context(), alice.RefreshToken)
	if err == nil || errors.Is(err, sso.ErrRevoked) {
		t.Fatalf("refresh with the provider down: got %v, want an error that is not ErrRevoked", err)
	}
}

func TestAuthURL(t *testing.T) {
	e := setup(t, false)
	rp := e.rp(t, e.config(warrenID, warrenSecret))
	verifier := oauth2.GenerateVerifier()
	u, err := url.Parse(rp.AuthURL("the-state", "the-nonce", verifier))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	want := url.Values{
		"client_id":             {warrenID},
		"redirect_uri":          {e.callback.URL + callbackPath},
		"response_type":         {"code"},
		"scope":                 {"openid email profile offline_access groups"},
		"state":                 {"the-state"},
		"nonce":                 {"the-nonce"},
		"code_challenge":        {oauth2.S256ChallengeFromVerifier(verifier)},
		"code_challenge_method": {"S256"},
	}
	if diff := cmp.Diff(want, q); diff != "" {
		t.Errorf("authorization URL's query (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(u.String(), e.op.Issuer+"/") {
		t.Errorf("authorization URL %s is not the provider's", u)
	}
}

func TestNew(t *testing.T) {
	e := setup(t, false)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "https://" + ln.Addr().String()
	ln.Close()

	tests := []struct {
		name    string
		mod     func(*sso.Config)
		wantErr string
	}{
		{name: "ok", mod: func(*sso.Config) {}},
		{name: "issuer mismatch", mod: func(c *sso.Config) { c.Issuer += "/" },
			wantErr: "the identity provider at " + e.op.Issuer + "/ calls itself " + e.op.Issuer + ": the issuer must match its discovery document exactly"},
		{name: "unreachable", mod: func(c *sso.Config) { c.Issuer = closed },
			wantErr: "identity provider " + closed + " unreachable: dial tcp " + closed[len("https://"):] + ": connect: connection refused"},
		{name: "untrusted certificate", mod: func(c *sso.Config) { c.HTTPClient = &http.Client{} },
			wantErr: "identity provider " + e.op.Issuer + " unreachable: tls: failed to verify certificate: x509: certificate signed by unknown authority"},
		{name: "not found", mod: func(c *sso.Config) { c.Issuer += "/nothing" },
			wantErr: "discovering the identity provider " + e.op.Issuer + "/nothing: 404 Not Found: 404 page not found"},
		{name: "http issuer", mod: func(c *sso.Config) { c.Issuer = "http://idp.example.com" },
			wantErr: `the identity provider's issuer "http://idp.example.com" is not an https URL`},
		{name: "no client ID", mod: func(c *sso.Config) { c.ClientID = "" },
			wantErr: "the client ID at the identity provider is empty"},
		{name: "relative redirect", mod: func(c *sso.Config) { c.RedirectURL = "/oidc/callback" },
			wantErr: `the redirect URL "/oidc/callback" is not an absolute http(s) URL`},
		{name: "bad domain", mod: func(c *sso.Config) { c.AllowedDomains = []string{"@example.com"} },
			wantErr: `allowed domain "@example.com" is not a domain name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := e.config(warrenID, warrenSecret)
			tt.mod(&cfg)
			_, err := sso.New(t.Context(), cfg)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.wantErr {
				t.Errorf("got error %q, want %q", got, tt.wantErr)
			}
		})
	}
}
