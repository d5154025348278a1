package coordclient_test

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/warrennet/warren/overlay/coordclient"
	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/test/coordtest"
)

// cmpNet compares netip values by equality.
var cmpNet = cmpopts.EquateComparable(netip.Prefix{}, netip.Addr{})

func TestAdminRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts coordtest.Options
	}{
		{"https-pinned-h2", coordtest.Options{}},
		{"plain-http", coordtest.Options{PlainHTTP: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			co := coordtest.Start(t, tc.opts)
			a := newAdmin(t, co.Admin)
			ctx := context.Background()
			byID := cmpopts.SortSlices(func(a, b wire.TokenInfo) bool { return a.ID < b.ID })

			// Tokens: create, list, revoke. The admin's own token is
			// listed too.
			adminTokens := co.Coord.Tokens()
			if len(adminTokens) != 1 || adminTokens[0].Role != wire.RoleAdmin {
				t.Fatalf("tokens at start = %+v, want the admin token", adminTokens)
			}
			created, err := a.CreateToken(ctx, wire.CreateTokenRequest{Role: wire.RoleConnector, Name: "office", ExpiresIn: wire.Duration(time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			tok, err := wire.ParseToken(created.Token)
			if err != nil {
				t.Fatalf("created token does not parse: %v", err)
			}
			if tok.URL != co.URL || tok.Pin != co.Pin {
				t.Errorf("token names %s pin %q, want %s pin %q", tok.URL, tok.Pin, co.URL, co.Pin)
			}
			if created.Info.Name != "office" || created.Info.Role != wire.RoleConnector || created.Info.ExpiresAt == nil {
				t.Errorf("CreateToken info = %+v", created.Info)
			}
			infos, err := a.Tokens(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(append(adminTokens, created.Info), infos, byID); diff != "" {
				t.Errorf("Tokens() mismatch (-want +got):\n%s", diff)
			}
			if err := a.RevokeToken(ctx, created.Info.ID); err != nil {
				t.Fatal(err)
			}
			infos, err = a.Tokens(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, info := range infos {
				want := wire.TokenActive
				if info.ID == created.Info.ID {
					want = wire.TokenRevoked
				}
				if got := info.State(time.Now()); got != want {
					t.Errorf("token %s (%s) state after RevokeToken = %v, want %v", info.ID, info.Role, got, want)
				}
			}

			// A route needs its connector enrolled.
			office := co.Enroll(t, wire.RoleConnector, "office", mustKey(t).PublicKey())

			// Routes: add, list, lookup, delete (IPv4 and IPv6 paths).
			var added []wire.Route
			for _, req := range []wire.AddRouteRequest{
				{Prefix: "192.168.0.0/24", Connector: "office", Comment: "lan"},
				{Prefix: "192.168.0.0/16", Connector: "office"},
				{Prefix: "fd00:1::/64", Connector: "office"},
			} {
				r, err := a.AddRoute(ctx, req)
				if err != nil {
					t.Fatalf("AddRoute(%+v): %v", req, err)
				}
				if r.Prefix.String() != req.Prefix || r.Connector != req.Connector || r.Comment != req.Comment {
					t.Errorf("AddRoute(%+v) = %+v", req, r)
				}
				added = append(added, *r)
			}
			routes, err := a.Routes(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(added, routes, cmpNet, cmpopts.SortSlices(func(a, b wire.Route) bool { return a.Prefix.String() < b.Prefix.String() })); diff != "" {
				t.Errorf("Routes() mismatch (-want +got):\n%s", diff)
			}
			look, err := a.LookupRoute(ctx, netip.MustParseAddr("192.168.0.10"))
			if err != nil {
				t.Fatal(err)
			}
			if look.Route == nil || look.Route.Prefix != netip.MustParsePrefix("192.168.0.0/24") || look.Online {
				t.Errorf("LookupRoute(192.168.0.10) = %+v, want the /24, offline", look)
			}
			look, err = a.LookupRoute(ctx, netip.MustParseAddr("fd00:1::5"))
			if err != nil {
				t.Fatal(err)
			}
			if look.Route == nil || look.Route.Prefix != netip.MustParsePrefix("fd00:1::/64") {
				t.Errorf("LookupRoute(fd00:1::5) = %+v, want fd00:1::/64", look)
			}
			for _, p := range []string{"192.168.0.0/24", "fd00:1::/64"} {
				if err := a.DeleteRoute(ctx, netip.MustParsePrefix(p)); err != nil {
					t.Fatalf("DeleteRoute(%s): %v", p, err)
				}
			}
			routes, err = a.Routes(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(added[1:2], routes, cmpNet); diff != "" {
				t.Errorf("Routes() after deletes mismatch (-want +got):\n%s", diff)
			}

			// Nodes: list, remove.
			enrolled := co.Enroll(t, wire.RoleClient, "laptop", mustKey(t).PublicKey())
			nodes, err := a.Nodes(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(nodes) != 2 || nodes[0].Node != enrolled.Node || nodes[1].Node != office.Node {
				t.Errorf("Nodes() = %+v, want %+v and %+v", nodes, enrolled.Node, office.Node)
			}

			exp, err := a.Export(ctx)
			if err != nil {
				t.Fatal(err)
			}
			// Tokens: the admin's, the revoked one, the two that enrolled.
			if v := co.Coord.Version(); exp.Version != v || len(exp.Nodes) != 2 || len(exp.Routes) != 1 || len(exp.Tokens) != 4 {
				t.Errorf("Export() = %+v, want version %d, 2 nodes, 1 route, 4 tokens", exp, v)
			}

			if err := a.RemoveNode(ctx, "laptop"); err != nil {
				t.Fatal(err)
			}
			nodes, err = a.Nodes(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(nodes) != 1 || nodes[0].Node != office.Node {
				t.Errorf("Nodes() after RemoveNode = %+v, want just %+v", nodes, office.Node)
			}

			a.Close()
			checkNoLeaks(t)
		})
	}
}

func TestAdminWireErrors(t *testing.T) {
	co := newCoordinator(t, coordtest.Options{})
	co.Enroll(t, wire.RoleConnector, "office", mustKey(t).PublicKey())
	a := newAdmin(t, co.Admin)
	ctx := context.Background()

	check := func(t *testing.T, err error, want wire.Error) {
		t.Helper()
		var we *wire.Error
		if !errors.As(err, &we) {
			t.Fatalf("error %v (%T) is not a *wire.Error", err, err)
		}
		if *we != want {
			t.Errorf("got wire.Error %+v, want %+v", *we, want)
		}
		if err.Error() != want.Message {
			t.Errorf("message = %q, want %q as is", err.Error(), want.Message)
		}
	}

	t.Run("invalid", func(t *testing.T) {
		_, err := a.AddRoute(ctx, wire.AddRouteRequest{Prefix: "192.168.0.1/24", Connector: "office"})
		check(t, err, wire.Error{Message: "192.168.0.1/24 has host bits set; did you mean 192.168.0.0/24?", Code: wire.CodeInvalid})
	})
	t.Run("not-found", func(t *testing.T) {
		err := a.DeleteRoute(ctx, netip.MustParsePrefix("10.0.0.0/8"))
		check(t, err, wire.Error{Message: "no route for 10.0.0.0/8 (see: warren routes ls)", Code: wire.CodeNotFound})
		err = a.RemoveNode(ctx, "ghost")
		check(t, err, wire.Error{Message: `no node named "ghost" (see: warren nodes ls)`, Code: wire.CodeNotFound})
	})
	t.Run("injected", func(t *testing.T) {
		want := wire.Error{Message: "the coordinator is shutting down", Code: wire.CodeUnavailable}
		co.faults.FailNext(http.MethodGet, wire.PathExport, 1, http.StatusServiceUnavailable, want)
		_, err := a.Export(ctx)
		check(t, err, want)
	})
	t.Run("not-admin", func(t *testing.T) {
		tok := co.Token(t, wire.CreateTokenRequest{Role: wire.RoleClient, Name: "laptop"})
		_, err := newAdmin(t, tok).Nodes(ctx)
		check(t, err, wire.Error{Message: "the coordinator refused the admin credential (wrong, revoked or not an admin token)", Code: wire.CodeUnauthorized})
	})
}

func TestAdminTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := newRawServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	a := newAdmin(t, wire.Token{URL: srv.URL, Secret: "0123456789abcdef"}, coordclient.WithTimeout(50*time.Millisecond))
	_, err := a.Nodes(context.Background())
	want := "cannot reach the coordinator at " + srv.URL + ": no answer within 50ms"
	if err == nil || err.Error() != want {
		t.Fatalf("got error %v, want %q", err, want)
	}
	if !errors.Is(err, coordclient.ErrUnreachable) {
		t.Errorf("errors.Is(%v, ErrUnreachable) = false", err)
	}

	// The caller's own cancellation is reported as such.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := a.Nodes(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("with a cancelled context: got %v, want context.Canceled", err)
	}
}

func TestNewAdminRejectsBadToken(t *testing.T) {
	for _, tok := range []wire.Token{
		{URL: "ftp://x", Secret: "0123456789abcdef"},
		{URL: "https://x:1", Pin: "abc", Secret: "0123456789abcdef"},
		{URL: "https://x:1", Secret: "short"},
	} {
		if _, err := coordclient.NewAdmin(tok); err == nil {
			t.Errorf("NewAdmin(%+v) succeeded, want an error", tok)
		}
	}
}
