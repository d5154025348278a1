package coord

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/warrennet/warren/overlay/wire"
)

func TestEnrollAssignsStableIdentity(t *testing.T) {
	h := newHarness(t)
	a := h.enroll(wire.RoleConnector, "office")
	b := h.enroll(wire.RoleClient, "laptop")
	if got, want := a.Node.Address, netip.MustParseAddr("100.96.0.1"); got != want {
		t.Errorf("first address = %v, want %v", got, want)
	}
	if got, want := b.Node.Address, netip.MustParseAddr("100.96.0.2"); got != want {
		t.Errorf("second address = %v, want %v", got, want)
	}
	n, err := h.c.AuthenticateNode(b.Credential)
	if err != nil {
		t.Fatal(err)
	}
	if n.Name != "laptop" || n.Role != wire.RoleClient {
		t.Errorf("credential authenticates %s/%s, want laptop/client", n.Name, n.Role)
	}
	// A coordinator restarted on the same store knows the node.
	c2, err := New(context.Background(), Config{Store: h.store, URL: "https://198.51.100.10:8443"})
	if err != nil {
		t.Fatal(err)
	}
	n2, err := c2.AuthenticateNode(b.Credential)
	if err != nil || n2 != n {
		t.Errorf("after restart: %v, %v; want %v", n2, err, n)
	}
}

func TestEnrollRefusals(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	used := h.token(wire.RoleClient, "used", false, 0)
	if _, err := h.c.Enroll(ctx, used, wire.EnrollRequest{PublicKey: testKey()}); err != nil {
		t.Fatal(err)
	}
	expiring := h.token(wire.RoleClient, "brief", false, time.Hour)
	revoked := h.token(wire.RoleClient, "gone", false, 0)
	var revokedID string
	for _, ti := range h.c.Tokens() {
		if ti.Name == "gone" {
			revokedID = ti.ID
		}
	}
	if err := h.c.RevokeToken(ctx, revokedID); err != nil {
		t.Fatal(err)
	}
	admin, err := h.c.CreateAdminToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	adminTok, _ := wire.ParseToken(admin.Token)
	h.clock.Advance(2 * time.Hour)
	before := h.c.Export()

	tests := []struct {
		name, secret string
		req          wire.EnrollRequest
		code, want   string
	}{
		{"used", used, wire.EnrollRequest{PublicKey: testKey()}, wire.CodeTokenUsed, `token "used" has already been used; single-use tokens enroll one node (create one with --reusable for more)`},
		{"expired", expiring, wire.EnrollRequest{PublicKey: testKey()}, wire.CodeTokenExpired, `token "brief" has expired; ask your admin for a new one`},
		{"revoked", revoked, wire.EnrollRequest{PublicKey: testKey()}, wire.CodeTokenRevoked, `token "gone" has been revoked; ask your admin for a new one`},
		{"unknown", "not-a-real-secret-at-all", wire.EnrollRequest{PublicKey: testKey()}, wire.CodeUnauthorized, `the coordinator does not know this token; ask your admin for a new one`},
		{"admin", adminTok.Secret, wire.EnrollRequest{PublicKey: testKey()}, wire.CodeInvalid, `an admin token cannot enroll a node; create one with: warren token create --role client|connector --name NAME`},
		{"no key", h.token(wire.RoleClient, "nokey", false, 0), wire.EnrollRequest{}, wire.CodeInvalid, `public key is missing`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := h.c.Enroll(ctx, tt.secret, tt.req)
			var we *wire.Error
			if !errors.As(err, &we) || we.Message != tt.want || we.Code != tt.code {
				t.Errorf("Enroll error = %#v\nwant code %s, message %s", err, tt.code, tt.want)
			}
		})
	}
	after := h.c.Export()
	if len(after.Nodes) != len(before.Nodes) || after.Version != before.Version {
		t.Errorf("refused enrollments changed nodes or version: %d→%d nodes, v%d→v%d", len(before.Nodes), len(after.Nodes), before.Version, after.Version)
	}
}

func TestSingleUseTokenRace(t *testing.T) {
	h := newHarness(t)
	secret := h.token(wire.RoleClient, "laptop", false, 0)
	const n = 50
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		ok, used int
		other    []error
	)
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			_, err := h.c.Enroll(context.Background(), secret, wire.EnrollRequest{PublicKey: testKey()})
			var we *wire.Error
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.As(err, &we) && we.Code == wire.CodeTokenUsed:
				used++
			default:
				other = append(other, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if ok != 1 || used != n-1 || len(other) != 0 {
		t.Errorf("%d enrollments: %d succeeded, %d refused as used, other errors %v; want 1, %d, none", n, ok, used, other, n-1)
	}
	st, err := h.store.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Nodes) != 1 {
		t.Errorf("store holds %d nodes, want 1", len(st.Nodes))
	}
}

func TestReusableTokenNamesNodes(t *testing.T) {
	h := newHarness(t)
	secret := h.token(wire.RoleClient, "laptops", true, 0)
	var names []string
	for range 3 {
		resp, err := h.c.Enroll(context.Background(), secret, wire.EnrollRequest{PublicKey: testKey()})
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, resp.Node.Name)
	}
	want := []string{"laptops-1", "laptops-2", "laptops-3"}
	for i := range want {
		if names[i] != want[i] {
			t.Errorf("names = %v, want %v", names, want)
			break
		}
	}
}

func TestAdminAuthentication(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	resp, err := h.c.CreateAdminToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := wire.ParseToken(resp.Token)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.c.AuthenticateAdmin(tok.Secret); err != nil {
		t.Errorf("admin secret refused: %v", err)
	}
	client := h.token(wire.RoleClient, "laptop", true, 0)
	for _, s := range []string{"", "wrong", client} {
		if err := h.c.AuthenticateAdmin(s); err == nil {
			t.Errorf("AuthenticateAdmin(%q) accepted a non-admin secret", s)
		}
	}
	if err := h.c.RevokeToken(ctx, resp.Info.ID); err != nil {
		t.Fatal(err)
	}
	if err := h.c.AuthenticateAdmin(tok.Secret); err == nil {
		t.Error("revoked admin token still accepted")
	}
}
