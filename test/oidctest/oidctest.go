// Package oidctest runs a real OpenID Provider for tests: the OP of
// github.com/zitadel/oidc/v3 (package op) over its example in-memory
// storage, served over HTTPS on 127.0.0.1 with a certificate the test
// trusts (HTTPClient, CertPool). The storage is wrapped only to give users
// a groups claim (the "groups" scope, advertised in discovery), to
// disable a user (their refresh and userinfo calls then fail as at a real
// provider), to register the test's clients, and to hold the users below.
// The login page is a plain HTML form posting a username and password to
// the example storage's check; Browser fills it in as a person would.
//
// Users (username = e-mail, password = Password(email)):
//
//	alice@example.com  verified, groups eng
//	bob@example.com    verified, groups ops
//	carol@example.com  e-mail NOT verified
//	dave@other.org     verified, no groups
//
// It is test support: nothing outside _test.go files imports it, and
// nothing else in Warren imports the zitadel OP.
package oidctest

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"

	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"
)

// The users every provider knows.
const (
	Alice = "alice@example.com" // groups eng
	Bob   = "bob@example.com"   // groups ops
	Carol = "carol@example.com" // e-mail not verified
	Dave  = "dave@other.org"    // no groups
)

// GroupsScope is the scope that asks for the groups claim, and the
// claim's name.
const GroupsScope = "groups"

// Password is the user's password at the provider.
func Password(email string) string { return "pw-" + email }

// Client is an OAuth client registered at the provider: a confidential
// web client (client_secret_basic), allowed the code and refresh grants.
type Client struct {
	ID, Secret   string
	RedirectURLs []string
	// ClaimsInIDToken puts the e-mail and profile claims in the ID token
	// even when an access token is issued with it. Without it the
	// provider follows OpenID Connect Core 5.4: those claims come only
	// from the userinfo endpoint (the groups claim is in both).
	ClaimsInIDToken bool
}

// Provider is a running OpenID Provider. It stops when the test ends.
type Provider struct {
	// Issuer is the provider's issuer URL, https://127.0.0.1:PORT.
	Issuer string

	srv   *httptest.Server
	store *store

	mu         sync.Mutex
	transports []*http.Transport // guarded by mu: handed out, their idle connections closed by Close
}

// Start starts a provider with the given clients (more can be added
// with AddClient).
func Start(t testing.TB, clients ...Client) *Provider {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "https://" + ln.Addr().String()
	st := newStore()
	for _, c := range clients {
		st.addClient(c)
	}
	var key [32]byte
	rand.Read(key[:])
	cfg := &op.Config{
		CryptoKey:             key,
		CryptoKeyId:           "oidctest",
		CodeMethodS256:        true,
		AuthMethodPost:        true,
		GrantTypeRefreshToken: true,
		SupportedUILocales:    []language.Tag{language.English},
		SupportedScopes:       append(slices.Clone(op.DefaultSupportedScopes), GroupsScope),
		SupportedClaims:       append(slices.Clone(op.DefaultSupportedClaims), GroupsScope),
	}
	provider, err := op.NewProvider(cfg, st, op.StaticIssuer(issuer))
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(loginPath, op.NewIssuerInterceptor(provider.IssuerFromRequest).Handler(
		&loginPage{check: st.CheckUsernamePassword, callback: op.AuthCallbackURL(provider)}))
	mux.Handle("/", provider)
	srv := &httptest.Server{
		Listener: ln,
		Config: &http.Server{
			Handler:  mux,
			ErrorLog: log.New(discard{}, "", 0), // a client's aborted handshake is no test failure
		},
	}
	srv.StartTLS()
	p := &Provider{Issuer: issuer, srv: srv, store: st}
	t.Cleanup(p.Close)
	return p
}

// Close stops the provider and closes the idle connections of the
// clients and browsers it handed out. It may be called more than once.
func (p *Provider) Close() {
	p.srv.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.transports {
		t.CloseIdleConnections()
	}
}

func (p *Provider) track(t *http.Transport) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.transports = append(p.transports, t)
}

// AddClient registers (or replaces) a client: one whose redirect URL is
// known only once its server runs.
func (p *Provider) AddClient(c Client) { p.store.addClient(c) }

// Certificate is the provider's TLS certificate (self-signed).
func (p *Provider) Certificate() *x509.Certificate { return p.srv.Certificate() }

// CertPool holds the provider's certificate alone.
func (p *Provider) CertPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.Certificate())
	return pool
}

// HTTPClient returns a new client that trusts the provider's certificate,
// with no cookie jar: what a relying party uses to reach the provider.
func (p *Provider) HTTPClient() *http.Client {
	t := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: p.CertPool()},
		ForceAttemptHTTP2: true,
	}
	p.track(t)
	return &http.Client{Transport: t}
}

// SetGroups replaces the user's groups; nil leaves them none.
func (p *Provider) SetGroups(email string, groups ...string) { p.store.setGroups(email, groups) }

// Disable disables the user: their password, refresh tokens and access
// tokens stop working.
func (p *Provider) Disable(email string) { p.store.setDisabled(email, true) }

// Enable undoes Disable.
func (p *Provider) Enable(email string) { p.store.setDisabled(email, false) }

// discard is an io.Writer that drops everything.
type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }
