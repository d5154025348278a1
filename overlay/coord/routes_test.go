package coord

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/routes"
)

func TestAddRouteRejects(t *testing.T) {
	h := newHarness(t)
	h.enroll(wire.RoleConnector, "office")
	h.enroll(wire.RoleConnector, "aws")
	h.enroll(wire.RoleClient, "laptop")
	ctx := context.Background()
	if _, err := h.c.AddRoute(ctx, wire.AddRouteRequest{Prefix: "192.168.0.0/24", Connector: "office"}); err != nil {
		t.Fatal(err)
	}
	before := h.c.Export()

	tests := []struct {
		prefix, connector string
		code, want        string
	}{
		{"foo", "office", wire.CodeInvalid, `"foo" is not a valid CIDR prefix (for example 192.168.0.0/24)`},
		{"192.168.0.0/33", "office", wire.CodeInvalid, `"192.168.0.0/33" is not a valid CIDR prefix (for example 192.168.0.0/24)`},
		{"192.168.0", "office", wire.CodeInvalid, `"192.168.0" is not a valid CIDR prefix (for example 192.168.0.0/24)`},
		{"192.168.0.10", "office", wire.CodeInvalid, `"192.168.0.10" is an address, not a prefix; did you mean 192.168.0.10/32?`},
		{"192.168.1.1/24", "office", wire.CodeInvalid, `192.168.1.1/24 has host bits set; did you mean 192.168.1.0/24?`},
		{"127.0.0.0/8", "office", wire.CodeInvalid, `127.0.0.0/8 overlaps loopback (127.0.0.0/8) and cannot be routed`},
		{"169.254.10.0/24", "office", wire.CodeInvalid, `169.254.10.0/24 overlaps link-local (169.254.0.0/16) and cannot be routed`},
		{"224.0.0.0/4", "office", wire.CodeInvalid, `224.0.0.0/4 overlaps multicast (224.0.0.0/4) and cannot be routed`},
		{"0.0.0.0/8", "office", wire.CodeInvalid, `0.0.0.0/8 overlaps this network (0.0.0.0/8) and cannot be routed`},
		{"100.96.1.0/24", "office", wire.CodeInvalid, `100.96.1.0/24 overlaps the Warren overlay range (100.96.0.0/12) and cannot be routed`},
		{"0.0.0.0/0", "office", wire.CodeInvalid, `0.0.0.0/0 would send all traffic to a connector; full tunnels are not supported`},
		{"10.0.0.0/8", "offce", wire.CodeNotFound, `unknown connector "offce" (enrolled connectors: aws, office)`},
		{"10.0.0.0/8", "laptop", wire.CodeInvalid, `"laptop" is a client, not a connector`},
		{"10.0.0.0/8", "", wire.CodeInvalid, `no connector given; add --connector NAME`},
		{"192.168.0.0/24", "aws", wire.CodeConflict, `192.168.0.0/24 is already served by connector "office"; remove it first with: warren routes rm 192.168.0.0/24`},
	}
	for _, tt := range tests {
		t.Run(tt.prefix+"→"+tt.connector, func(t *testing.T) {
			_, err := h.c.AddRoute(ctx, wire.AddRouteRequest{Prefix: tt.prefix, Connector: tt.connector})
			var we *wire.Error
			if !errors.As(err, &we) {
				t.Fatalf("AddRoute error = %v, want a *wire.Error", err)
			}
			if we.Message != tt.want {
				t.Errorf("message:\n got %s\nwant %s", we.Message, tt.want)
			}
			if we.Code != tt.code {
				t.Errorf("code = %q, want %q", we.Code, tt.code)
			}
			if diff := cmp.Diff(before, h.c.Export(), netipEqual); diff != "" {
				t.Errorf("state changed by a refused add (-before +after):\n%s", diff)
			}
		})
	}
}

// TestAddRouteRefusesEveryGuardedRange: every range of the destination
// guard's table, and every NAT64, 6to4 and Teredo form of every refused
// IPv4 range, is refused at routes add with one line, and changes
// nothing. It runs over the table itself: a range added there is tested
// here too.
func TestAddRouteRefusesEveryGuardedRange(t *testing.T) {
	h := newHarness(t)
	h.enroll(wire.RoleConnector, "office")
	ctx := context.Background()
	before := h.c.Export()
	examples := routes.GuardExamples()
	if len(examples) < 100 {
		t.Fatalf("only %d guard examples", len(examples))
	}
	for _, ex := range examples {
		_, err := h.c.AddRoute(ctx, wire.AddRouteRequest{Prefix: ex.Prefix.String(), Connector: "office"})
		var we *wire.Error
		if !errors.As(err, &we) || we.Code != wire.CodeInvalid {
			t.Errorf("routes add %v (%s) = %v, want it refused as invalid", ex.Prefix, ex.What, err)
			continue
		}
		if strings.ContainsAny(we.Message, "\n\r") || !strings.HasPrefix(we.Message, ex.Prefix.String()+" ") {
			t.Errorf("routes add %v: message %q, want one line naming the prefix", ex.Prefix, we.Message)
		}
	}
	if diff := cmp.Diff(before, h.c.Export(), netipEqual); diff != "" {
		t.Errorf("state changed by refused adds (-before +after):\n%s", diff)
	}
	// What the admin sees for the embedded forms.
	for prefix, want := range map[string]string{
		"64:ff9b::7f00:1/128":  "64:ff9b::7f00:1/128 overlaps the NAT64 form of loopback (127.0.0.0/8) and cannot be routed",
		"64:ff9b::/96":         "64:ff9b::/96 overlaps the NAT64 form of this network (0.0.0.0/8) and cannot be routed",
		"2002:a9fe:a9fe::/48":  "2002:a9fe:a9fe::/48 overlaps the 6to4 form of link-local (169.254.0.0/16) and cannot be routed",
		"::7f00:1/128":         "::7f00:1/128 overlaps IPv4-compatible (::/96) and cannot be routed",
		"255.255.255.255/32":   "255.255.255.255/32 overlaps limited broadcast (255.255.255.255/32) and cannot be routed",
		"::ffff:127.0.0.1/128": "::ffff:127.0.0.1/128 is an IPv4-mapped IPv6 prefix; did you mean 127.0.0.1/32?",
	} {
		_, err := h.c.AddRoute(ctx, wire.AddRouteRequest{Prefix: prefix, Connector: "office"})
		if err == nil || err.Error() != want {
			t.Errorf("routes add %s = %v, want %s", prefix, err, want)
		}
	}
	// The translated forms of a LAN are routable.
	for _, prefix := range []string{"64:ff9b::c0a8:0/120", "2002:c0a8::/32"} {
		if _, err := h.c.AddRoute(ctx, wire.AddRouteRequest{Prefix: prefix, Connector: "office"}); err != nil {
			t.Errorf("routes add %s: %v", prefix, err)
		}
	}
}

func TestAddRouteNoConnectors(t *testing.T) {
	h := newHarness(t)
	_, err := h.c.AddRoute(context.Background(), wire.AddRouteRequest{Prefix: "10.0.0.0/8", Connector: "office"})
	want := `unknown connector "office": no connector is enrolled yet (create one with: warren token create --role connector --name office)`
	if err == nil || err.Error() != want {
		t.Errorf("AddRoute error = %v, want %s", err, want)
	}
}

func TestRoutesLongestPrefixAndLookup(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.enroll(wire.RoleConnector, "office")
	h.enroll(wire.RoleConnector, "lab")
	for _, r := range []wire.AddRouteRequest{
		{Prefix: "192.168.0.0/16", Connector: "office", Comment: "whole site"},
		{Prefix: "192.168.7.0/24", Connector: "lab", Force: true},
	} {
		if _, err := h.c.AddRoute(ctx, r); err != nil {
			t.Fatalf("AddRoute(%v): %v", r, err)
		}
	}
	tests := []struct {
		ip        string
		connector string
		reason    string
	}{
		{"192.168.7.9", "lab", "192.168.7.9 is in 192.168.7.0/24, served by connector lab, which is offline (never connected)"},
		{"192.168.0.10", "office", "192.168.0.10 is in 192.168.0.0/16, served by connector office, which is offline (never connected)"},
		{"10.1.2.3", "", "no route covers 10.1.2.3; add one with: warren routes add CIDR --connector NAME"},
	}
	for _, tt := range tests {
		got, err := h.c.LookupRoute(tt.ip)
		if err != nil {
			t.Fatalf("LookupRoute(%s): %v", tt.ip, err)
		}
		connector := ""
		if got.Route != nil {
			connector = got.Route.Connector
		}
		if connector != tt.connector || got.Reason != tt.reason {
			t.Errorf("LookupRoute(%s) = %q, %q; want %q, %q", tt.ip, connector, got.Reason, tt.connector, tt.reason)
		}
	}
	if _, err := h.c.LookupRoute("192.168.0"); err == nil || err.Error() != `"192.168.0" is not an IP address` {
		t.Errorf("LookupRoute(bad) error = %v", err)
	}

	// Removing the connector keeps its routes, which then say why they are dead.
	if err := h.c.RemoveNode(ctx, "lab"); err != nil {
		t.Fatal(err)
	}
	got, _ := h.c.LookupRoute("192.168.7.9")
	if want := "192.168.7.9 is in 192.168.7.0/24, routed to connector lab, which is not enrolled: traffic has nowhere to go"; got.Reason != want {
		t.Errorf("reason = %q, want %q", got.Reason, want)
	}
}

func TestRemoveRoute(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.enroll(wire.RoleConnector, "office")
	if _, err := h.c.AddRoute(ctx, wire.AddRouteRequest{Prefix: "192.168.0.0/24", Connector: "office"}); err != nil {
		t.Fatal(err)
	}
	before := h.c.Export()
	for _, tt := range []struct{ in, want string }{
		{"192.168.1.0/24", "no route for 192.168.1.0/24 (see: warren routes ls)"},
		{"192.168.0.1/24", "192.168.0.1/24 has host bits set; did you mean 192.168.0.0/24?"},
		{"bogus", `"bogus" is not a valid CIDR prefix (for example 192.168.0.0/24)`},
	} {
		err := h.c.RemoveRoute(ctx, tt.in)
		if err == nil || err.Error() != tt.want {
			t.Errorf("RemoveRoute(%s) = %v, want %s", tt.in, err, tt.want)
		}
	}
	if diff := cmp.Diff(before, h.c.Export(), netipEqual); diff != "" {
		t.Errorf("refused removals changed state:\n%s", diff)
	}
	if err := h.c.RemoveRoute(ctx, "192.168.0.0/24"); err != nil {
		t.Fatal(err)
	}
	if got := h.c.Routes(); len(got) != 0 {
		t.Errorf("routes after removal = %v, want none", got)
	}
	if h.c.Version() <= before.Version {
		t.Errorf("version %d did not grow past %d", h.c.Version(), before.Version)
	}
}

func TestAddRouteSameConnectorIsIdempotent(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.enroll(wire.RoleConnector, "office")
	first, err := h.c.AddRoute(ctx, wire.AddRouteRequest{Prefix: "192.168.0.0/24", Connector: "office", Comment: "lan"})
	if err != nil {
		t.Fatal(err)
	}
	v := h.c.Version()
	again, err := h.c.AddRoute(ctx, wire.AddRouteRequest{Prefix: "192.168.0.0/24", Connector: "office"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(first, again, netipEqual); diff != "" {
		t.Errorf("re-adding changed the route:\n%s", diff)
	}
	if h.c.Version() != v {
		t.Errorf("re-adding bumped the version from %d to %d", v, h.c.Version())
	}
}

func TestAddRouteProxyProtocol(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	office := h.enroll(wire.RoleConnector, "office")
	req := wire.AddRouteRequest{Prefix: "192.168.0.0/24", Connector: "office", Comment: "lan", ProxyProtocol: true}
	r, err := h.c.AddRoute(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !r.ProxyProtocol || !h.c.Routes()[0].ProxyProtocol {
		t.Errorf("AddRoute with PROXY v2: route %+v, routes %+v", r, h.c.Routes())
	}
	conn := newFakeConn()
	h.serve(office.Node, conn)
	if nm := nextNetMap(t, conn); len(nm.Routes) != 1 || !nm.Routes[0].ProxyProtocol {
		t.Errorf("connector netmap routes = %+v, want one with PROXY v2", nm.Routes)
	}

	// Re-adding without it turns it off, keeping the comment.
	v := h.c.Version()
	req.ProxyProtocol, req.Comment = false, ""
	if r, err = h.c.AddRoute(ctx, req); err != nil {
		t.Fatal(err)
	}
	if r.ProxyProtocol || r.Comment != "lan" || h.c.Version() == v {
		t.Errorf("re-added route = %+v at v%d (was v%d), want PROXY v2 off, comment kept, version bumped", r, h.c.Version(), v)
	}
	if nm := nextNetMap(t, conn); len(nm.Routes) != 1 || nm.Routes[0].ProxyProtocol {
		t.Errorf("connector netmap routes = %+v, want PROXY v2 off", nm.Routes)
	}
}

// TestAddRouteAllowConnectorHost: the flag is stored, carried in the
// connector's netmap, and re-adding the route without
// it turns it off.
func TestAddRouteAllowConnectorHost(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	office := h.enroll(wire.RoleConnector, "office")
	req := wire.AddRouteRequest{Prefix: "192.168.0.5/32", Connector: "office", AllowConnectorHost: true}
	r, err := h.c.AddRoute(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !r.AllowConnectorHost || !h.c.Routes()[0].AllowConnectorHost {
		t.Errorf("AddRoute with --allow-connector-host: route %+v, routes %+v", r, h.c.Routes())
	}
	st, err := h.store.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Routes) != 1 || !st.Routes[0].AllowConnectorHost {
		t.Errorf("stored routes = %+v, want the flag kept", st.Routes)
	}
	conn := newFakeConn()
	h.serve(office.Node, conn)
	if nm := nextNetMap(t, conn); len(nm.Routes) != 1 || !nm.Routes[0].AllowConnectorHost {
		t.Errorf("connector netmap routes = %+v, want one allowing the connector host", nm.Routes)
	}

	req.AllowConnectorHost = false
	if r, err = h.c.AddRoute(ctx, req); err != nil {
		t.Fatal(err)
	}
	if r.AllowConnectorHost {
		t.Errorf("re-added route = %+v, want the flag off", r)
	}
	if nm := nextNetMap(t, conn); len(nm.Routes) != 1 || nm.Routes[0].AllowConnectorHost {
		t.Errorf("connector netmap routes = %+v, want the flag off", nm.Routes)
	}
}

// TestAddRouteTakesTrafficNeedsForce: a prefix inside another connector's
// route is refused with one line naming that route and connector, unless
// forced; inside the same connector's it needs no force; nothing changes
// on a refusal.
func TestAddRouteTakesTrafficNeedsForce(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.enroll(wire.RoleConnector, "office")
	h.enroll(wire.RoleConnector, "lab")
	add := func(prefix, connector string, force bool) error {
		_, err := h.c.AddRoute(ctx, wire.AddRouteRequest{Prefix: prefix, Connector: connector, Force: force})
		return err
	}
	if err := add("192.168.0.0/24", "office", false); err != nil {
		t.Fatal(err)
	}
	before := h.c.Export()
	for _, tt := range []struct {
		prefix, connector string
		want              string
	}{
		{"192.168.0.128/25", "lab", `192.168.0.128/25 would take traffic from route 192.168.0.0/24 (connector "office") to connector "lab"; add --force to move it`},
		{"192.168.0.7/32", "lab", `192.168.0.7/32 would take traffic from route 192.168.0.0/24 (connector "office") to connector "lab"; add --force to move it`},
	} {
		err := add(tt.prefix, tt.connector, false)
		var we *wire.Error
		if !errors.As(err, &we) || we.Code != wire.CodeConflict || we.Message != tt.want {
			t.Errorf("routes add %s → %s = %v, want a conflict: %s", tt.prefix, tt.connector, err, tt.want)
		}
	}
	if diff := cmp.Diff(before, h.c.Export(), netipEqual); diff != "" {
		t.Errorf("state changed by refused adds (-before +after):\n%s", diff)
	}

	for _, tt := range []struct {
		prefix, connector string
		force             bool
	}{
		{"192.168.0.64/26", "office", false}, // same connector: no force
		{"192.168.0.0/16", "lab", false},     // wider: takes nothing
		{"192.168.0.128/25", "lab", true},    // forced
		{"192.168.0.192/26", "lab", false},   // inside lab's own now
		{"192.168.0.0/24", "office", false},  // re-adding an existing route
	} {
		if err := add(tt.prefix, tt.connector, tt.force); err != nil {
			t.Errorf("routes add %s → %s (force %v): %v", tt.prefix, tt.connector, tt.force, err)
		}
	}
	got := map[string]string{}
	for _, r := range h.c.Routes() {
		got[r.Prefix.String()] = r.Connector
	}
	want := map[string]string{"192.168.0.0/16": "lab", "192.168.0.0/24": "office", "192.168.0.64/26": "office", "192.168.0.128/25": "lab", "192.168.0.192/26": "lab"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("routes (-want +got):\n%s", diff)
	}
	// Taking back from lab's /16 for office needs force too.
	if err := add("192.168.1.0/24", "office", false); err == nil || !strings.Contains(err.Error(), `route 192.168.0.0/16 (connector "lab")`) {
		t.Errorf("routes add 192.168.1.0/24 → office = %v, want refused naming lab's /16", err)
	}
}
