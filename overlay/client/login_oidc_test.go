package client_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/warrennet/warren/overlay/client"
	"github.com/warrennet/warren/overlay/coord"
	"github.com/warrennet/warren/overlay/coord/sso"
	"github.com/warrennet/warren/overlay/ctl"
	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/test/coordtest"
	"github.com/warrennet/warren/test/oidctest"
)

// pinnedCert fetches the coordinator's certificate and checks it against
// its pin, as the laptop does: the browser then trusts exactly it.
func pinnedCert(t *testing.T, s *coordtest.Server) *x509.Certificate {
	t.Helper()
	conn, err := tls.Dial("tcp", strings.TrimPrefix(s.URL, "https://"), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cert := conn.ConnectionState().PeerCertificates[0]
	if sum := sha256.Sum256(cert.Raw); hex.EncodeToString(sum[:]) != s.Pin {
		t.Fatal("the coordinator's certificate does not match its pin")
	}
	return cert
}

// TestLoginWithProvider: the whole chain with nothing imitated: `warren
// up --coordinator` on the laptop engine, the real coordinator, the real
// sso package, and the zitadel OpenID Provider, where a browser logs in
// as alice with her password.
func TestLoginWithProvider(t *testing.T) {
	ctx := context.Background()
	const id, secret = "warren", "warren-secret"
	op := oidctest.Start(t)
	s := coordtest.Start(t, coordtest.Options{
		IdentityProvider: func(coordURL string) coord.IdentityProvider {
			op.AddClient(oidctest.Client{ID: id, Secret: secret, RedirectURLs: []string{coordURL + wire.PathOIDCCallback}})
			p, err := sso.New(ctx, sso.Config{Issuer: op.Issuer, ClientID: id, ClientSecret: secret, RedirectURL: coordURL + wire.PathOIDCCallback, HTTPClient: op.HTTPClient()})
			if err != nil {
				t.Fatal(err)
			}
			return p
		},
	})
	eng, err := client.New(client.Config{StateDir: t.TempDir(), Hostname: "alice-laptop", Platform: &fakePlatform{addr: netip.MustParseAddr("100.96.0.99")}})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Down(ctx)
	browser := op.NewBrowser(pinnedCert(t, s))

	uctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	links := make(chan ctl.Progress, 1)
	done := make(chan error, 1)
	go func() {
		done <- eng.Up(uctx, ctl.UpRequest{Coordinator: s.URL, Pin: s.Pin}, func(p ctl.Progress) {
			if p.LoginURL != "" {
				links <- p
			}
		})
	}()
	var shown ctl.Progress
	select {
	case shown = <-links:
	case err := <-done:
		t.Fatalf("up ended before showing a link: %v", err)
	}
	page, err := browser.Login(uctx, shown.LoginURL, oidctest.Alice, oidctest.Password(oidctest.Alice))
	if err != nil {
		t.Fatal(err)
	}
	// The page the person ends on names them, the machine and the code
	// `warren up` showed.
	if page.StatusCode != http.StatusOK || !strings.Contains(page.Body, oidctest.Alice) || !strings.Contains(page.Body, shown.Code) {
		t.Errorf("the callback page (%d):\n%s\nwant it to name %s and the code %s", page.StatusCode, page.Body, oidctest.Alice, shown.Code)
	}
	if err := <-done; err != nil {
		t.Fatalf("up: %v", err)
	}
	st := eng.Status(ctx)
	if !st.Enrolled || st.State != ctl.StateUp || st.Node.User != oidctest.Alice || st.Node.Name != "alice-laptop" {
		t.Errorf("after logging in: enrolled %v, state %s, node %+v", st.Enrolled, st.State, st.Node)
	}
	// The same link a second time is spent.
	if page, err := browser.Get(ctx, shown.LoginURL); err != nil || page.StatusCode != http.StatusGone {
		t.Errorf("the link again: %v, %+v; want 410", err, page)
	}
}
