// Package coordtest runs a real coordinator for tests: the SQLite store in
// a temporary directory, the coordinator, and its API behind a TLS
// (HTTP/2) server on loopback, with the certificate pinned in every token
// as in production. Tests of the CLI, the node side and the benchmarks use
// it instead of building their own.
//
// It is test support: nothing outside _test.go files imports it.
package coordtest

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/warrennet/warren/overlay/coord"
	"github.com/warrennet/warren/overlay/coord/api"
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
	// Admin is an admin token for this coordinator.
	Admin wire.Token
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
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	cfg := coord.Config{Store: st, URL: srv.URL, Pin: pin, Now: o.Now, Rand: o.Rand}
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
	co, err := coord.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = api.New(co, nil)
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
	t.Cleanup(func() {
		stopRelay()
		srv.Close()
		st.Close()
	})
	resp, err := co.CreateAdminToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := wire.ParseToken(resp.Token)
	if err != nil {
		t.Fatal(err)
	}
	return &Server{Coord: co, URL: srv.URL, Pin: pin, Admin: admin}
}

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
