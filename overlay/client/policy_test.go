package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/overlay/agent"
	"github.com/warrennet/warren/overlay/client"
	"github.com/warrennet/warren/overlay/ctl"
	"github.com/warrennet/warren/overlay/nodestate"
	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/test/coordtest"
)

// upWithCoordinator brings an engine up against a real coordinator behind
// faults: a client of alice@example.com, and a connector "office"
// (offline) serving 192.168.0.0/24.
func upWithCoordinator(t *testing.T) (*coordtest.Server, *coordtest.Faults, *client.Engine) {
	t.Helper()
	ctx := context.Background()
	faults := coordtest.NewFaults()
	co := coordtest.Start(t, coordtest.Options{Wrap: faults.Wrap})
	co.Enroll(t, wire.RoleConnector, "office", wire.Key{1, 31: 0x42})
	co.AddRoute(t, "192.168.0.0/24", "office")
	tok := co.Token(t, wire.CreateTokenRequest{Role: wire.RoleClient, Name: "laptop", User: "alice@example.com"})
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
	if err := eng.Up(ctx, ctl.UpRequest{}, func(ctl.Progress) {}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Down(context.Background()) })
	// Caught up: the stream is open and carries denials.
	waitVersion(t, eng, co.Coord.Version())
	deadline := time.Now().Add(10 * time.Second)
	for co.Acked("laptop") != co.Coord.Version() {
		if time.Now().After(deadline) {
			t.Fatalf("the coordinator saw no ack of v%d within 10 s", co.Coord.Version())
		}
		time.Sleep(5 * time.Millisecond)
	}
	return co, faults, eng
}

// withoutRuleText drops the text of rule i from the netmaps on a control
// stream, as a coordinator that sends only rule numbers would.
func withoutRuleText(t *testing.T, i int) func([]byte) []byte {
	return func(line []byte) []byte {
		var m wire.StreamMessage
		if err := json.Unmarshal(line, &m); err != nil || m.NetMap == nil {
			return line
		}
		m.NetMap.Policy.Rules = slices.DeleteFunc(m.NetMap.Policy.Rules, func(r wire.PolicyRule) bool { return r.Index == i })
		b, err := json.Marshal(m)
		if err != nil {
			t.Errorf("re-encoding a netmap: %v", err)
			return line
		}
		return b
	}
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
	co, faults, eng := upWithCoordinator(t)
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

	co.AddHost(t, "production-server", "192.168.0.10")
	faults.Rewrite(withoutRuleText(t, 3))
	v := co.SetPolicy(t, `{
		"groups": {"eng": ["alice@example.com"]},
		"rules": [
			{"from": ["group:eng"], "to": ["192.168.0.0/24:22"]},
			{"from": ["user:alice@example.com"], "to": ["production-server:443"]},
			{"from": ["user:alice@example.com"], "to": ["192.168.0.10:*"], "proto": "any"},
			{"from": ["*"], "to": ["192.168.0.20:53"], "proto": "udp"},
		],
	}`)
	waitVersion(t, eng, v)
	other := netip.MustParseAddr("192.168.0.20")
	for _, tt := range []struct {
		q    ctl.WhyQuery
		want answer
	}{
		{port(22, ""), answer{true, wire.PolicyEnforced, "allowed by rule 1: group:eng → 192.168.0.0/24:22/tcp", &yes, 1}},
		{port(443, wire.ProtoTCP), answer{true, wire.PolicyEnforced, "allowed by rule 2: user:alice@example.com → production-server:443/tcp", &yes, 2}},
		// Rule 3 has no text in the netmap (faults dropped it): its number
		// is enough.
		{port(8080, wire.ProtoUDP), answer{true, wire.PolicyEnforced, "allowed by rule 3", &yes, 3}},
		{ctl.WhyQuery{IP: other, Port: 8080, HasPort: true}, answer{true, wire.PolicyEnforced, "denied by policy: no rule lets alice@example.com reach 192.168.0.20:8080/tcp", &no, 0}},
		{ctl.WhyQuery{IP: other, Port: 53, HasPort: true, Proto: wire.ProtoUDP}, answer{true, wire.PolicyEnforced, "allowed by rule 4: * → 192.168.0.20:53/udp", &yes, 4}},
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
	co, _, eng := upWithCoordinator(t)
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
	// ports push the oldest out. The connector reports them; the
	// coordinator passes them to the laptop's stream.
	send := func(r wire.FlowRecord) {
		t.Helper()
		co.ReportFlows(t, "office", r)
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
