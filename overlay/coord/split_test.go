package coord

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/warrennet/warren/overlay/wire"
)

func TestSplitEditIsPushedToClients(t *testing.T) {
	h := newHarness(t)
	laptop := h.enroll(wire.RoleClient, "laptop")
	office := h.enroll(wire.RoleConnector, "office")
	lc, oc := newFakeConn(), newFakeConn()
	h.serve(laptop.Node, lc)
	if nm := nextNetMap(t, lc); nm.Split.Mode != wire.SplitExclude || len(nm.Split.Exclude) == 0 {
		t.Fatalf("first netmap's split policy = %+v, want the default exclude list", nm.Split)
	}
	h.serve(office.Node, oc)
	nextNetMap(t, oc)
	// Drain the laptop's netmap for the connector coming online.
	nextNetMap(t, lc)

	resp, err := h.c.AddSplitEntry(context.Background(), wire.SplitEntryRequest{Prefix: "192.168.0.128/25", Comment: "printers"})
	if err != nil {
		t.Fatal(err)
	}
	want := netip.MustParsePrefix("192.168.0.128/25")
	has := func(p wire.SplitPolicy) bool {
		return slices.ContainsFunc(p.Exclude, func(e wire.SplitEntry) bool { return e.Prefix == want && !e.Builtin })
	}
	if !has(resp.Policy) {
		t.Errorf("edit response policy lacks the entry: %+v", resp.Policy)
	}
	if nm := nextNetMap(t, lc); !has(nm.Split) || nm.Version != h.c.Version() {
		t.Errorf("pushed split policy = %+v (v%d), want the new exclude at v%d", nm.Split, nm.Version, h.c.Version())
	}
	// Connectors do not carry the policy, so they get nothing.
	select {
	case m := <-oc.out:
		if m.Type == wire.MsgNetMap {
			t.Errorf("connector got a netmap for a split edit: %+v", m.NetMap)
		}
	default:
	}
}
