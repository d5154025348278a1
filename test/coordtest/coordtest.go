// Package coordtest runs a real coordinator for tests: the SQLite store in
// a temporary directory, the coordinator, and its API behind a TLS
// (HTTP/2) server on loopback, with the certificate pinned in every token
// as in production (or plain HTTP/1.1, as behind a TLS proxy). Tests of the
// CLI, the node side and the benchmarks use it instead of building their
// own, so the coordinator's rules are written once.
//
// Faults wraps the API to inject what a network or a failing coordinator
// does (failed answers, streams dropped, cut, silenced or carrying lines no
// coordinator sends); Server's helpers make the admin's changes and read
// what the coordinator knows of a node.
//
// It is test support: nothing outside _test.go files imports it.
package coordtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrennet/warren/overlay/coord"
	"github.com/warrennet/warren/overlay/coord/api"
	"github.com/warrennet/warren/overlay/coord/sshca"
	"github.com/warrennet/warren/overlay/coord/store"
	"github.com/warrennet/warren/overlay/coord/tlscert"
	"github.com/warrennet/warren/overlay/relay"
	"github.com/warrennet/warren/overlay/wire"
)

// Options adjust the coordinator.
type Options struct {
	// Now and Rand make output deterministic; nil means the real ones.
	Now  func() time.Time
	Rand io.Reader
	// Relay starts a relay on loopback UDP, as the coordinator process
	// does, and puts it in every netmap.
	Relay bool
	// PlainHTTP serves http:// (HTTP/1.1 only, no pin) instead of TLS.
	PlainHTTP bool
	// HeartbeatInterval and HeartbeatTimeout time the control streams;
	// zeros mean the wire defaults.
	HeartbeatInterval time.Duration
	HeartbeatTimeout  time.Duration
	// Wrap, if set, wraps the API handler: (*Faults).Wrap, for one.
	Wrap func(http.Handler) http.Handler
	// IdentityProvider, if set, turns single sign-on on: it is called with
	// the coordinator's URL (the redirect URL is URL + wire.PathOIDCCallback)
	// once the server listens, before the coordinator is built.
	IdentityProvider func(coordURL string) coord.IdentityProvider
	// RevalidateInterval is the coordinator's; zero means its default.
	// Tests call Coord.RevalidateUsers themselves: Run is not started.
	RevalidateInterval time.Duration
	// SSHCertMaxValidity caps SSH certificates; zero means the
	// coordinator's default. Every test coordinator has an SSH CA, kept
	// in a temporary directory.
	SSHCertMaxValidity time.Duration
	// Seed, if set, writes to the store before the coordinator loads it,
	// as an older version of Warren could have: the store checks less
	// than the coordinator does.
	Seed func(context.Context, store.Store) error
}

// Server is a running coordinator. It stops when the test ends.
type Server struct {
	Coord *coord.Coordinator
	URL   string
	Pin   string
	// Certificate is the server's TLS certificate (nil with PlainHTTP),
	// for clients that verify it instead of pinning it (a browser).
	Certificate *x509.Certificate
	// Admin is an admin token for this coordinator.
	Admin wire.Token

	close  func()
	pushes int // guarded by the caller: Push is for one test goroutine
}

// Start starts a coordinator.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "coordinator.db"))
	if err != nil {
		t.Fatal(err)
	}
	// The coordinator's own certificate (ECDSA P-256), not httptest's
	// RSA one: handshakes cost what they cost in production, which the
	// control-plane benchmark's thousands of sessions feel.
	if o.Seed != nil {
		if err := o.Seed(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	cert, pin, err := tlscert.LoadOrCreate(t.TempDir(), []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	// Handshake failures are expected in pin tests: keep them out of the
	// output unless the test fails or runs verbose.
	srv.Config.ErrorLog = log.New(testLogWriter{t}, "coordtest: ", 0)
	// Every request's context ends with Close, so open control streams
	// do not hold the server up.
	base, cancelBase := context.WithCancel(ctx)
	srv.Config.BaseContext = func(net.Listener) context.Context { return base }
	if o.PlainHTTP {
		srv.Start()
		pin = ""
	} else {
		srv.EnableHTTP2 = true
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		srv.StartTLS()
	}
	cfg := coord.Config{
		Store: st, URL: srv.URL, Pin: pin, Now: o.Now, Rand: o.Rand,
		HeartbeatInterval: o.HeartbeatInterval, HeartbeatTimeout: o.HeartbeatTimeout,
	}
	var pc net.PacketConn
	var relayKey []byte
	if o.Relay {
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if relayKey, err = relay.NewKey(); err != nil {
			t.Fatal(err)
		}
		cfg.RelayEndpoint = pc.LocalAddr().String()
		cfg.RelayCredential = func(n wire.Node) string {
			return relay.Issue(relayKey, relay.Claims{NodeID: n.ID, PublicKey: n.PublicKey, Role: n.Role, Expires: time.Now().Add(24 * time.Hour).Truncate(24 * time.Hour)})
		}
	}
	if o.IdentityProvider != nil {
		cfg.IdentityProvider = o.IdentityProvider(srv.URL)
	}
	cfg.RevalidateInterval = o.RevalidateInterval
	ca, err := sshca.Open(filepath.Join(t.TempDir(), sshca.Dir), o.Now)
	if err != nil {
		t.Fatal(err)
	}
	cfg.SSHCA, cfg.SSHCertMaxValidity = ca, o.SSHCertMaxValidity
	co, err := coord.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler = api.New(co, nil)
	if o.Wrap != nil {
		h = o.Wrap(h)
	}
	srv.Config.Handler = h
	stopRelay := func() {}
	if o.Relay {
		rs, err := relay.NewServer(relay.ServerConfig{Key: relayKey, Allowed: co.RelayAllowed})
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			rs.Serve(rctx, pc)
		}()
		stopRelay = func() {
			cancel()
			pc.Close()
			<-done
		}
	}
	var once sync.Once
	closeAll := func() {
		once.Do(func() {
			cancelBase()
			srv.CloseClientConnections()
			stopRelay()
			srv.Close()
			st.Close()
		})
	}
	t.Cleanup(closeAll)
	resp, err := co.CreateAdminToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := wire.ParseToken(resp.Token)
	if err != nil {
		t.Fatal(err)
	}
	var leaf *x509.Certificate
	if !o.PlainHTTP {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			t.Fatal(err)
		}
	}
	return &Server{Coord: co, URL: srv.URL, Pin: pin, Certificate: leaf, Admin: admin, close: closeAll}
}

// Close stops the coordinator as a crash would: open streams end, new
// connections are refused. It is idempotent; the test's end calls it too.
func (s *Server) Close() { s.close() }

// Token creates a token and returns it.
func (s *Server) Token(t testing.TB, req wire.CreateTokenRequest) wire.Token {
	t.Helper()
	resp, err := s.Coord.CreateToken(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := wire.ParseToken(resp.Token)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Enroll enrolls a node with a fresh single-use token, directly through
// the coordinator, with the given public key.
func (s *Server) Enroll(t testing.TB, role wire.Role, name string, pub wire.Key) wire.EnrollResponse {
	t.Helper()
	tok := s.Token(t, wire.CreateTokenRequest{Role: role, Name: name})
	resp, err := s.Coord.Enroll(context.Background(), tok.Secret, wire.EnrollRequest{PublicKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// testLogWriter sends the HTTP server's own log to the test's.
type testLogWriter struct{ t testing.TB }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
