package client_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/overlay/agent"
	"github.com/warrennet/warren/overlay/client"
	"github.com/warrennet/warren/overlay/coordclient"
	"github.com/warrennet/warren/overlay/coordclient/coordclienttest"
	"github.com/warrennet/warren/overlay/ctl"
	"github.com/warrennet/warren/overlay/nodestate"
	"github.com/warrennet/warren/overlay/wire"
)

// upWithFake brings an engine up against a fake coordinator: a client of
// alice@example.com, and a connector "office" (offline) serving
// 192.168.0.0/24.
func upWithFake(t *testing.T) (*coordclienttest.Server, *client.Engine) {
	t.Helper()
	ctx := context.Background()
	fake := coordclienttest.New(t)
	var key wire.Key
	key[0] = 1
	if _, err := fake.Enroll("office", wire.RoleConnector, key); err != nil {
		t.Fatal(err)
	}
	admin, err := coordclient.NewAdmin(fake.AdminToken())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.AddRoute(ctx, wire.AddRouteRequest{Prefix: "192.168.0.0/24", Connector: "office"}); err != nil {
		t.Fatal(err)
	}
	tok, err := fake.CreateToken(wire.CreateTokenRequest{Role: wire.RoleClient, Name: "laptop", User: "alice@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	stateDir := t.TempDir()
	dir, err := nodestate.Open(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	id, err := agent.Enroll(ctx, dir, tok.String(), wire.RoleClient, "")
	if err != nil {
		t.Fatal(err)
	}
	eng, err := client.New(client.Config{StateDir: stateDir, Platform: &fakePlatform{addr: id.Node.Address}})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Up(ctx, ctl.UpRequest{}, func(string) {}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Down(context.Background()) })
	return fake, eng
}

// waitVersion waits until the engine has applied netmap version v.
func waitVersion(t *testing.T, eng *client.Engine, v uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for eng.Status(context.Background()).NetMapVersion < v {
		if time.Now().After(deadline) {
			t.Fatalf("netmap v%d not applied within 10 s", v)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestWhyWithPolicy(t *testing.T) {
	ctx := context.Background()
	fake, eng := upWithFake(t)
	lanHost := netip.MustParseAddr("192.168.0.10")
	outside := netip.MustParseAddr("198.51.100.7")

	type answer struct {
		Tunnelled    bool
		Mode         wire.PolicyMode
		PolicyReason string
		Allow        *bool
		Rule         int
	}
	yes, no := true, false
	ask := func(q ctl.WhyQuery) answer {
		t.Helper()
		w, err := eng.Why(ctx, q)
		if err != nil {
			t.Fatalf("Why(%+v): %v", q, err)
		}
		a := answer{Tunnelled: w.Tunnelled, Mode: w.PolicyMode, PolicyReason: w.PolicyReason}
		if w.Policy != nil {
			a.Allow, a.Rule = &w.Policy.Allow, w.Policy.Rule
			if w.Policy.Reason != w.PolicyReason {
				t.Errorf("Why(%+v): Policy.Reason %q and PolicyReason %q differ", q, w.Policy.Reason, w.PolicyReason)
			}
		}
		return a
	}
	port := func(p uint16, proto wire.Proto) ctl.WhyQuery {
		return ctl.WhyQuery{IP: lanHost, Port: p, HasPort: true, Proto: proto}
	}

	// No document: allow-all, said plainly.
	allowAll := "allowed: no access policy is set (allow-all)"
	for _, tt := range []struct {
		q    ctl.WhyQuery
		want answer
	}{
		{ctl.WhyQuery{IP: lanHost}, answer{true, wire.PolicyAllowAll, allowAll, nil, 0}},
		{port(8080, ""), answer{true, wire.PolicyAllowAll, allowAll, &yes, 0}},
		{ctl.WhyQuery{IP: outside, Port: 80, HasPort: true}, answer{false, wire.PolicyAllowAll, "", nil, 0}},
	} {
		if diff := cmp.Diff(tt.want, ask(tt.q)); diff != "" {
			t.Errorf("allow-all, Why(%+v) (-want +got):\n%s", tt.q, diff)
		}
	}

	v := fake.SetPolicy(wire.NetMapPolicy{
		Enforced: true,
		Grants: []wire.Grant{
			{Prefix: netip.MustParsePrefix("192.168.0.0/24"), Ports: wire.PortRange{First: 22, Last: 22}, Proto: wire.ProtoTCP, Rule: 1},
			{Prefix: netip.MustParsePrefix("192.168.0.10/32"), Ports: wire.AllPorts, Proto: wire.ProtoAny, Rule: 3},
			{Prefix: netip.MustParsePrefix("192.168.0.10/32"), Ports: wire.PortRange{First: 443, Last: 443}, Proto: wire.ProtoTCP, Rule: 2},
			{Prefix: netip.MustParsePrefix("192.168.0.20/32"), Ports: wire.PortRange{First: 53, Last: 53}, Proto: wire.ProtoUDP, Rule: 4},
		},
		Rules: []wire.PolicyRule{
			{Index: 1, Text: "group:eng → 192.168.0.0/24:22/tcp"},
			{Index: 2, Text: "user:alice@example.com → production-server:443/tcp"},
		},
	})
	waitVersion(t, eng, v)
	other := netip.MustParseAddr("192.168.0.20")
	for _, tt := range []struct {
		q    ctl.WhyQuery
		want answer
	}{
		{port(22, ""), answer{true, wire.PolicyEnforced, "allowed by rule 1: group:eng → 192.168.0.0/24:22/tcp", &yes, 1}},
		{port(443, wire.ProtoTCP), answer{true, wire.PolicyEnforced, "allowed by rule 2: user:alice@example.com → production-server:443/tcp", &yes, 2}},
		// Rule 3 has no text in the netmap: its number is enough.
		{port(8080, wire.ProtoUDP), answer{true, wire.PolicyEnforced, "allowed by rule 3", &yes, 3}},
		{ctl.WhyQuery{IP: other, Port: 8080, HasPort: true}, answer{true, wire.PolicyEnforced, "denied by policy: no rule lets alice@example.com reach 192.168.0.20:8080/tcp", &no, 0}},
		{ctl.WhyQuery{IP: other, Port: 53, HasPort: true, Proto: wire.ProtoUDP}, answer{true, wire.PolicyEnforced, "allowed by rule 4", &yes, 4}},
		{ctl.WhyQuery{IP: other, Proto: wire.ProtoICMP}, answer{true, wire.PolicyEnforced, "denied by policy: no rule lets alice@example.com reach 192.168.0.20/icmp", &no, 0}},
		{ctl.WhyQuery{IP: other}, answer{true, wire.PolicyEnforced, "the access policy lets alice@example.com reach 192.168.0.20 only on: 22/tcp (rule 1), 53/udp (rule 4)", nil, 0}},
		{ctl.WhyQuery{IP: netip.MustParseAddr("192.168.0.30"), Proto: wire.ProtoICMP}, answer{true, wire.PolicyEnforced, "denied by policy: no rule lets alice@example.com reach 192.168.0.30/icmp", &no, 0}},
		{ctl.WhyQuery{IP: outside, Port: 22, HasPort: true}, answer{false, wire.PolicyEnforced, "", nil, 0}},
	} {
		if diff := cmp.Diff(tt.want, ask(tt.q)); diff != "" {
			t.Errorf("enforced, Why(%+v) (-want +got):\n%s", tt.q, diff)
		}
	}

	st := eng.Status(ctx)
	if st.Node.User != "alice@example.com" || st.Policy != (ctl.PolicyStatus{Mode: wire.PolicyEnforced, Grants: 4}) {
		t.Errorf("status user %q, policy %+v; want alice@example.com, enforced with 4 grants", st.Node.User, st.Policy)
	}
}

func TestStatusKeepsRecentDenials(t *testing.T) {
	ctx := context.Background()
	fake, eng := upWithFake(t)
	start := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	denial := func(i int, port uint16) wire.FlowRecord {
		dst := netip.AddrPortFrom(netip.MustParseAddr("192.168.0.10"), port)
		return wire.FlowRecord{
			ID: fmt.Sprint(i), Connector: "office", User: "alice@example.com", Node: "laptop",
			Dst: dst, Proto: wire.ProtoTCP, Decision: wire.DecisionDeny,
			Reason: fmt.Sprintf("denied by policy: no rule lets alice@example.com reach %s/tcp", dst),
			Start:  start.Add(time.Duration(i) * time.Second), End: start.Add(time.Duration(i) * time.Second),
		}
	}
	// Three refusals of :8080 in a row count as one entry; then 24 other
	// ports push the oldest out.
	var sent int
	send := func(r wire.FlowRecord) {
		t.Helper()
		if n, err := fake.SendDenial("laptop", r); n != 1 || err != nil {
			t.Fatalf("SendDenial = %d, %v", n, err)
		}
		sent++
	}
	for i := range 3 {
		send(denial(i, 8080))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		ds := eng.Status(ctx).Denials
		if len(ds) == 1 && ds[0].Count == 3 {
			if want := (ctl.Denial{At: start.Add(2 * time.Second), Dest: netip.MustParseAddrPort("192.168.0.10:8080"), Proto: wire.ProtoTCP, Connector: "office",
				Reason: "denied by policy: no rule lets alice@example.com reach 192.168.0.10:8080/tcp", Count: 3}); ds[0] != want {
				t.Errorf("denial = %+v, want %+v", ds[0], want)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("denials = %+v, want one entry counting 3", ds)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for i := 3; i < 27; i++ {
		send(denial(i, uint16(9000+i)))
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		ds := eng.Status(ctx).Denials
		if len(ds) > 0 && ds[0].Dest.Port() == 9026 {
			if len(ds) != ctl.MaxDenials {
				t.Fatalf("%d denials kept, want %d", len(ds), ctl.MaxDenials)
			}
			for i, d := range ds {
				if want := uint16(9026 - i); d.Dest.Port() != want || d.Count != 1 {
					t.Errorf("denial %d: port %d count %d, want port %d count 1 (newest first)", i, d.Dest.Port(), d.Count, want)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the last denial did not arrive: %+v", ds)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
