package coord

import (
	"context"
	"strings"
	"testing"

	"github.com/warrennet/warren/overlay/wire"
)

// TestProviderGroupsInPolicy: a person's provider groups are group:NAME
// in the policy, for policy why and for the grants in their netmap, and
// follow them through revalidation.
func TestProviderGroupsInPolicy(t *testing.T) {
	h, idp := newSSOHarness(t)
	ctx := context.Background()
	office := h.enroll(wire.RoleConnector, "office")
	if _, err := h.c.AddRoute(ctx, wire.AddRouteRequest{Prefix: "10.1.0.0/16", Connector: office.Node.Name}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.c.AddHost(ctx, wire.AddHostRequest{Name: "db", Address: "10.1.0.5"}); err != nil {
		t.Fatal(err)
	}
	// With single sign-on, a group nobody is in yet is a warning.
	resp, err := h.c.SetPolicy(ctx, wire.SetPolicyRequest{Document: `{"rules": [{"from": ["group:eng"], "to": ["db:5432"]}]}`})
	if err != nil {
		t.Fatalf("SetPolicy naming a provider group before anyone logged in: %v", err)
	}
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "no user is in group:eng yet") {
		t.Errorf("warnings %q", resp.Warnings)
	}

	e := h.loginAs(idp, "laptop", alice("eng"))
	d, err := h.c.PolicyWhy("alice@example.com", "db:5432")
	if err != nil {
		t.Fatal(err)
	}
	if !d.Allow || d.Rule != 1 || !strings.Contains(d.RuleText, "group:eng") {
		t.Errorf("PolicyWhy(alice, db:5432) = %+v; want allowed by rule 1 (group:eng)", d)
	}
	conn := newFakeConn()
	h.serve(e.Node, conn)
	nm := nextNetMap(t, conn)
	if !nm.Policy.Enforced || len(nm.Policy.Grants) != 1 || nm.Policy.Grants[0].Rule != 1 {
		t.Errorf("alice's netmap policy = %+v; want one grant from rule 1", nm.Policy)
	}

	// The provider moves her out of eng: the grant goes at the next round.
	moved := alice("sales")
	idp.byRefresh["rt-alice"] = refreshAnswer{id: moved}
	if err := h.c.RevalidateUsers(ctx); err != nil {
		t.Fatal(err)
	}
	if d, err := h.c.PolicyWhy("alice@example.com", "db:5432"); err != nil || d.Allow {
		t.Errorf("PolicyWhy after leaving eng = %+v, %v; want denied", d, err)
	}
	nm = nextNetMap(t, conn)
	if len(nm.Policy.Grants) != 0 {
		t.Errorf("alice's netmap after leaving eng still grants %+v", nm.Policy.Grants)
	}
}

// TestNoGroupWithoutSSO: without single sign-on, an unknown group is
// refused as before.
func TestNoGroupWithoutSSO(t *testing.T) {
	h := newHarness(t)
	_, err := h.c.SetPolicy(context.Background(), wire.SetPolicyRequest{Document: `{"rules": [{"from": ["group:eng"], "to": ["10.0.0.0/8:22"]}]}`})
	wantCode(t, "SetPolicy naming an unknown group", err, wire.CodeInvalid)
}
