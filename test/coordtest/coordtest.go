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
	"io"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/warrennet/warren/overlay/coord"
	"github.com/warrennet/warren/overlay/coord/api"
	"github.com/warrennet/warren/overlay/coord/store"
	"github.com/warrennet/warren/overlay/wire"
)

// Options adjust the coordinator.
type Options struct {
	// Now and Rand make output deterministic; nil means the real ones.
	Now  func() time.Time
	Rand io.Reader
	// RelayEndpoint and RelayCredential are passed to coord.Config.
	RelayEndpoint   string
	RelayCredential func(wire.Node) string
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
	srv := httptest.NewUnstartedServer(nil)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	pin := wire.CertPin(srv.Certificate().Raw)
	co, err := coord.New(ctx, coord.Config{
		Store:           st,
		URL:             srv.URL,
		Pin:             pin,
		Now:             o.Now,
		Rand:            o.Rand,
		RelayEndpoint:   o.RelayEndpoint,
		RelayCredential: o.RelayCredential,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = api.New(co, nil)
	t.Cleanup(func() {
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
