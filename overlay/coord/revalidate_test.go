package coord

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/overlay/coord/sso"
	"github.com/warrennet/warren/overlay/wire"
)

func nodeNamesOf(c *Coordinator) []string {
	var out []string
	for _, n := range c.Nodes() {
		out = append(out, n.Name)
	}
	return out
}

func TestRemoveUser(t *testing.T) {
	h, idp := newSSOHarness(t)
	ctx := context.Background()
	e := h.loginAs(idp, "laptop", alice("eng"))
	h.loginAs(idp, "phone", alice("eng"))
	bob := sso.Identity{Issuer: "https://idp.example.com", Subject: "bob", Email: "bob@example.com", RefreshToken: "rt-bob"}
	h.loginAs(idp, "pc", bob)
	// A node a token of alice's enrolled goes too.
	tok, err := h.c.CreateToken(ctx, wire.CreateTokenRequest{Role: wire.RoleClient, Name: "desk", User: "alice@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	pt, _ := wire.ParseToken(tok.Token)
	if _, err := h.c.Enroll(ctx, pt.Secret, wire.EnrollRequest{PublicKey: testKey()}); err != nil {
		t.Fatal(err)
	}
	conn := newFakeConn()
	done := h.serve(e.Node, conn)
	nextNetMap(t, conn)
	v := h.c.Version()

	wantCode(t, "RemoveUser(unknown)", h.c.RemoveUser(ctx, "carol@example.com"), wire.CodeNotFound)
	wantCode(t, "RemoveUser(not an address)", h.c.RemoveUser(ctx, "carol"), wire.CodeInvalid)
	if h.c.Version() != v {
		t.Errorf("a refused RemoveUser changed the version")
	}
	if err := h.c.RemoveUser(ctx, "Alice@Example.com"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"pc"}, nodeNamesOf(h.c)); diff != "" {
		t.Errorf("nodes after RemoveUser (-want +got):\n%s", diff)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrNodeRemoved) {
			t.Errorf("stream ended with %v, want ErrNodeRemoved", err)
		}
	case <-time.After(2 * time.Second):
		t.Errorf("alice's stream did not end")
	}
	// The token naming her stays, so she is still a (token) user.
	users := h.c.Users()
	if len(users) != 2 || users[0].Email != "alice@example.com" || users[0].Source != wire.UserSourceToken || users[0].Nodes != nil {
		t.Errorf("Users after RemoveUser = %+v", users)
	}
	wantCode(t, "RemoveUser(a token-only user without nodes)", h.c.RemoveUser(ctx, "alice@example.com"), wire.CodeNotFound)
	// Reloaded from the store, the state is the same.
	c2, err := New(ctx, Config{Store: h.store, URL: h.c.url})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(h.c.Export(), c2.Export(), netipEqual); diff != "" {
		t.Errorf("state reloaded (-live +loaded):\n%s", diff)
	}
}

func TestRevalidateUsers(t *testing.T) {
	h, idp := newSSOHarness(t)
	ctx := context.Background()
	e := h.loginAs(idp, "laptop", alice("eng"))
	bob := sso.Identity{Issuer: "https://idp.example.com", Subject: "bob", Email: "bob@example.com", RefreshToken: "rt-bob", Groups: []string{"ops"}}
	h.loginAs(idp, "pc", bob)
	carol := sso.Identity{Issuer: "https://idp.example.com", Subject: "carol", Email: "carol@example.com"} // no refresh token
	h.loginAs(idp, "tablet", carol)
	conn := newFakeConn()
	done := h.serve(e.Node, conn)
	nextNetMap(t, conn)

	// Round 1: alice moves to group ops with a new refresh token; the
	// provider cannot be asked about bob; carol's login is fresh.
	moved := alice("ops")
	moved.RefreshToken = "rt-alice-2"
	idp.byRefresh["rt-alice"] = refreshAnswer{id: moved}
	idp.byRefresh["rt-bob"] = refreshAnswer{err: errors.New("connection refused")}
	h.clock.Advance(time.Hour)
	if err := h.c.RevalidateUsers(ctx); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"laptop", "pc", "tablet"}, nodeNamesOf(h.c)); diff != "" {
		t.Errorf("nodes after round 1 (-want +got):\n%s", diff)
	}
	if g := h.c.snap.Load().providerGroups(); !cmp.Equal(g, map[string][]string{"ops": {"alice@example.com", "bob@example.com"}}) {
		t.Errorf("provider groups after round 1: %v", g)
	}
	u := h.c.Users()[0]
	if u.ValidatedAt == nil || !u.ValidatedAt.Equal(h.clock.Now()) {
		t.Errorf("alice validated at %v, want %v", u.ValidatedAt, h.clock.Now())
	}

	// Round 2: alice is disabled at the provider; carol's login is older
	// than the interval.
	idp.byRefresh["rt-alice-2"] = refreshAnswer{err: fmt.Errorf("%w: invalid_grant", sso.ErrRevoked)}
	h.clock.Advance(DefaultRevalidateInterval)
	if err := h.c.RevalidateUsers(ctx); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"pc"}, nodeNamesOf(h.c)); diff != "" {
		t.Errorf("nodes after round 2 (-want +got):\n%s", diff)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrNodeRemoved) {
			t.Errorf("stream ended with %v, want ErrNodeRemoved", err)
		}
	case <-time.After(2 * time.Second):
		t.Errorf("alice's stream did not end")
	}
	if _, err := h.c.AuthenticateNode(e.Credential); err == nil {
		t.Errorf("alice's credential still works")
	}
	users := h.c.Users()
	if a := users[0]; !a.Disabled || a.Reason == "" || a.Groups != nil {
		t.Errorf("alice after round 2: %+v; want disabled with a reason, no groups", a)
	}
	if c := users[2]; c.Disabled || c.Nodes != nil {
		t.Errorf("carol after round 2: %+v; want not disabled, no nodes", c)
	}
	if g := h.c.snap.Load().providerGroups(); !cmp.Equal(g, map[string][]string{"ops": {"bob@example.com"}}) {
		t.Errorf("provider groups after round 2: %v", g)
	}

	// Round 3: nobody left to ask but bob.
	idp.refreshes = 0
	v := h.c.Version()
	if err := h.c.RevalidateUsers(ctx); err != nil {
		t.Fatal(err)
	}
	if idp.refreshes != 1 || h.c.Version() != v {
		t.Errorf("round 3 asked %d times (want 1: bob) and moved the version %d → %d", idp.refreshes, v, h.c.Version())
	}

	// Logging in again lifts the disabled mark.
	h.loginAs(idp, "laptop", alice("eng"))
	if a := h.c.Users()[0]; a.Disabled || a.Reason != "" {
		t.Errorf("alice after logging in again: %+v", a)
	}
}

func TestRevalidateLoopInRun(t *testing.T) {
	idp := newFakeIdP()
	h := newHarnessWith(t, func(c *Config) { c.IdentityProvider, c.RevalidateInterval = idp, 20*time.Millisecond })
	h.loginAs(idp, "laptop", alice())
	idp.mu.Lock()
	idp.byRefresh["rt-alice"] = refreshAnswer{err: sso.ErrRevoked}
	idp.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- h.c.Run(ctx, time.Hour) }()
	eventually(t, 5*time.Second, "alice's laptop removed by the loop", func() bool { return len(h.c.Nodes()) == 0 })
	cancel()
	if err := <-ran; err != nil {
		t.Errorf("Run = %v", err)
	}
}
