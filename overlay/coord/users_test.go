package coord

import (
	"context"
	"errors"
	"testing"

	"github.com/warrennet/warren/overlay/wire"
)

func TestTokenUser(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	for _, tt := range []struct {
		req  wire.CreateTokenRequest
		want string // error message; empty for success
	}{
		{wire.CreateTokenRequest{Role: wire.RoleClient, Name: "alice-laptop", User: "alice@example.com", Reusable: true}, ""},
		{wire.CreateTokenRequest{Role: wire.RoleClient, Name: "kiosk"}, ""},
		{wire.CreateTokenRequest{Role: wire.RoleConnector, Name: "office", User: "alice@example.com"},
			"only client tokens belong to a user; connectors have none"},
		{wire.CreateTokenRequest{Role: wire.RoleClient, Name: "bob", User: "bob"},
			`user "bob" is not an e-mail address (name@domain)`},
		{wire.CreateTokenRequest{Role: wire.RoleClient, Name: "bob", User: "bob @example.com"},
			`user "bob @example.com" may not hold spaces, commas, quotes or control characters`},
	} {
		resp, err := h.c.CreateToken(ctx, tt.req)
		if tt.want != "" {
			var we *wire.Error
			if !errors.As(err, &we) || we.Code != wire.CodeInvalid || we.Message != tt.want {
				t.Errorf("CreateToken(%s, user %q) = %v; want invalid: %s", tt.req.Name, tt.req.User, err, tt.want)
			}
			continue
		}
		if err != nil {
			t.Fatalf("CreateToken(%s): %v", tt.req.Name, err)
		}
		if resp.Info.User != tt.req.User {
			t.Errorf("CreateToken(%s): user %q, want %q", tt.req.Name, resp.Info.User, tt.req.User)
		}
	}
	users := map[string]string{}
	for _, ti := range h.c.Tokens() {
		users[ti.Name] = ti.User
	}
	if users["alice-laptop"] != "alice@example.com" || users["kiosk"] != "" || len(users) != 2 {
		t.Errorf("Tokens users = %v", users)
	}
}

func TestEnrolledNodeBelongsToTokenUser(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	resp, err := h.c.CreateToken(ctx, wire.CreateTokenRequest{Role: wire.RoleClient, Name: "alice", User: "alice@example.com", Reusable: true})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := wire.ParseToken(resp.Token)
	if err != nil {
		t.Fatal(err)
	}
	var laptops []wire.EnrollResponse
	for range 2 {
		e, err := h.c.Enroll(ctx, tok.Secret, wire.EnrollRequest{PublicKey: testKey()})
		if err != nil {
			t.Fatal(err)
		}
		laptops = append(laptops, e)
	}
	office := h.enroll(wire.RoleConnector, "office")
	for _, e := range laptops {
		if e.Node.User != "alice@example.com" {
			t.Errorf("Enroll: node %s user %q, want alice@example.com", e.Node.Name, e.Node.User)
		}
	}
	if office.Node.User != "" {
		t.Errorf("connector user = %q, want none", office.Node.User)
	}
	got := map[string]string{}
	for _, n := range h.c.Nodes() {
		got[n.Name] = n.User
	}
	if got["alice-1"] != "alice@example.com" || got["alice-2"] != "alice@example.com" || got["office"] != "" {
		t.Errorf("Nodes users = %v", got)
	}

	// The connector sees each client with its user.
	conn := newFakeConn()
	h.serve(office.Node, conn)
	nm := nextNetMap(t, conn)
	for _, p := range nm.Peers {
		if p.User != "alice@example.com" {
			t.Errorf("connector netmap: peer %s user %q, want alice@example.com", p.Name, p.User)
		}
	}
	if len(nm.Peers) != 2 {
		t.Errorf("connector netmap has %d peers, want 2", len(nm.Peers))
	}
}
