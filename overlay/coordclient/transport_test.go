package coordclient_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/warrennet/warren/overlay/coordclient"
	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/test/coordtest"
)

const testSecret = "0123456789abcdef0123"

func newRawServer(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func TestPinMismatch(t *testing.T) {
	co := coordtest.Start(t, coordtest.Options{})
	wrong := strings.Repeat("ab", 32)
	tok := co.Admin
	tok.Pin = wrong
	_, err := newAdmin(t, tok).Nodes(context.Background())

	var pe *coordclient.PinError
	if !errors.As(err, &pe) {
		t.Fatalf("got %v (%T), want a *PinError", err, err)
	}
	if pe.Want != wrong || pe.Got != co.Pin {
		t.Errorf("PinError{Want: %s, Got: %s}, want {%s, %s}", pe.Want, pe.Got, wrong, co.Pin)
	}
	want := fmt.Sprintf("coordinator certificate does not match the token's pin (expected sha256 %s…, got %s…); "+
		"the token is for a different coordinator or the certificate changed", wrong[:16], co.Pin[:16])
	if err.Error() != want {
		t.Errorf("message:\n got %q\nwant %q", err.Error(), want)
	}

	// Enrollment and the stream check the pin the same way.
	_, err = coordclient.Enroll(context.Background(), tok, wire.EnrollRequest{PublicKey: mustKey(t).PublicKey()})
	if !errors.As(err, &pe) {
		t.Errorf("Enroll: got %v, want a *PinError", err)
	}
}

func TestPinMatchesUppercase(t *testing.T) {
	// A pin typed in capitals by hand still names the same certificate.
	co := newCoordinator(t, coordtest.Options{})
	rec := &recorder{}
	cfg := nodeConfig(t, co, "laptop", rec)
	cfg.Pin = strings.ToUpper(cfg.Pin)
	start(t, cfg)
	waitFor(t, "a netmap", func() bool { return rec.last() != nil })
}

func TestNoPinVerifiesWithSystemRoots(t *testing.T) {
	co := coordtest.Start(t, coordtest.Options{})
	tok := co.Admin
	tok.Pin = ""
	_, err := newAdmin(t, tok).Nodes(context.Background())
	want := "cannot verify the certificate of the coordinator at " + co.URL + ": x509: certificate signed by unknown authority"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
	if errors.Is(err, coordclient.ErrUnreachable) {
		t.Errorf("an untrusted certificate matches ErrUnreachable")
	}
}

func TestUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	for _, scheme := range []string{"http", "https"} {
		t.Run(scheme, func(t *testing.T) {
			url := scheme + "://" + addr
			_, err := newAdmin(t, wire.Token{URL: url, Pin: strings.Repeat("0", 64), Secret: testSecret}).Nodes(context.Background())
			want := "cannot reach the coordinator at " + url + ": connection refused"
			if err == nil || err.Error() != want {
				t.Fatalf("got %v, want %q", err, want)
			}
			if !errors.Is(err, coordclient.ErrUnreachable) {
				t.Errorf("errors.Is(%v, ErrUnreachable) = false", err)
			}
			var ne *net.OpError
			if !errors.As(err, &ne) {
				t.Errorf("the *net.OpError is not reachable with errors.As")
			}
		})
	}
}

func TestUnreachableNoSuchHost(t *testing.T) {
	url := "https://coordinator.invalid:8443"
	_, err := newAdmin(t, wire.Token{URL: url, Secret: testSecret}).Nodes(context.Background())
	if err == nil || !strings.HasPrefix(err.Error(), "cannot reach the coordinator at "+url+": ") || strings.Contains(err.Error(), "dial tcp") {
		t.Fatalf("got %v, want one line starting %q without dial noise", err, "cannot reach the coordinator at "+url)
	}
}

func TestNonWireErrorBody(t *testing.T) {
	srv := newRawServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == wire.PathExport {
			http.Redirect(w, r, "https://elsewhere.example/", http.StatusFound)
			return
		}
		http.Error(w, "upstream connect error\nmore detail", http.StatusBadGateway)
	})
	a := newAdmin(t, wire.Token{URL: srv.URL, Secret: testSecret})
	_, err := a.Nodes(context.Background())
	want := "unexpected answer from the coordinator at " + srv.URL + ": 502 Bad Gateway (upstream connect error)"
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
	var we *wire.Error
	if errors.As(err, &we) {
		t.Errorf("a proxy's error page became a *wire.Error: %+v", we)
	}
	// Redirects are not followed: they would carry the secret elsewhere.
	_, err = a.Export(context.Background())
	want = "unexpected answer from the coordinator at " + srv.URL + ": 302 Found"
	if err == nil || err.Error() != want {
		t.Errorf("redirect: got %v, want %q", err, want)
	}
}

func TestRequestsCarryBearer(t *testing.T) {
	type seen struct{ method, path, auth, ctype string }
	got := make(chan seen, 1)
	srv := newRawServer(t, func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Method, r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("Content-Type")}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"prefix":"10.0.0.0/8","connector":"office","created_at":"2025-01-01T00:00:00Z","future_field":1}`)
	})
	a := newAdmin(t, wire.Token{URL: srv.URL + "/", Secret: testSecret})
	r, err := a.AddRoute(context.Background(), wire.AddRouteRequest{Prefix: "10.0.0.0/8", Connector: "office"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Connector != "office" {
		t.Errorf("decoded route %+v", r)
	}
	want := seen{http.MethodPost, wire.PathRoutes, "Bearer " + testSecret, "application/json"}
	if s := <-got; s != want {
		t.Errorf("request %+v, want %+v", s, want)
	}
}

func TestPinIsLeafSHA256(t *testing.T) {
	// A pin is what the protocol says: SHA-256 of the leaf certificate's
	// DER, lowercase hex.
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	sum := sha256.Sum256(srv.Certificate().Raw)
	pin := hex.EncodeToString(sum[:])
	_, err := newAdmin(t, wire.Token{URL: srv.URL, Pin: pin, Secret: testSecret}).Nodes(context.Background())
	if err == nil || !strings.Contains(err.Error(), "404 Not Found") {
		t.Errorf("with the right pin: got %v, want a 404 answer", err)
	}
}
