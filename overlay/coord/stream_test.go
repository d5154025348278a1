package coord

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/overlay/wire"
)

func TestStreamPushesNetMaps(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	office := h.enroll(wire.RoleConnector, "office")
	laptop := h.enroll(wire.RoleClient, "laptop")

	lc, oc := newFakeConn(), newFakeConn()
	h.serve(laptop.Node, lc)
	nm := nextNetMap(t, lc)
	if nm.Self.Name != "laptop" || len(nm.Routes) != 0 || len(nm.Peers) != 1 || nm.Peers[0].Online {
		t.Fatalf("first laptop netmap: self %q, routes %v, peers %+v; want laptop, no routes, office offline", nm.Self.Name, nm.Routes, nm.Peers)
	}
	h.serve(office.Node, oc)
	if got := nextNetMap(t, oc); len(got.Peers) != 1 || got.Peers[0].Name != "laptop" {
		t.Fatalf("connector's peers = %v, want [laptop]", got.Peers)
	}
	// The connector coming online is pushed to the laptop.
	nm = nextNetMap(t, lc)
	if len(nm.Peers) != 1 || !nm.Peers[0].Online {
		t.Fatalf("laptop's peers = %+v, want office online", nm.Peers)
	}

	if _, err := h.c.AddRoute(ctx, wire.AddRouteRequest{Prefix: "192.168.0.0/24", Connector: "office"}); err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("192.168.0.0/24")}
	nm = nextNetMap(t, lc)
	if diff := cmp.Diff(want, nm.Peers[0].Prefixes, netipEqual); diff != "" {
		t.Errorf("laptop sees office serving (-want +got):\n%s", diff)
	}
	if nm.Version != h.c.Version() {
		t.Errorf("pushed version %d, coordinator at %d", nm.Version, h.c.Version())
	}
	if got := nextNetMap(t, oc); len(got.Routes) != 1 || got.Routes[0].Prefix != want[0] {
		t.Errorf("connector's routes = %v, want %v", got.Routes, want)
	}

	// Acknowledgements show in the node list.
	lc.in <- &wire.StreamMessage{Type: wire.MsgAck, Version: nm.Version}
	eventually(t, 2*time.Second, "laptop's ack recorded", func() bool {
		for _, n := range h.c.Nodes() {
			if n.Name == "laptop" {
				return n.AppliedVersion == nm.Version && n.InSync && n.Online
			}
		}
		return false
	})
}

func TestStreamUnaffectedNodeGetsNothing(t *testing.T) {
	h := newHarness(t)
	office := h.enroll(wire.RoleConnector, "office")
	h.enroll(wire.RoleConnector, "lab")
	oc := newFakeConn()
	h.serve(office.Node, oc)
	nextNetMap(t, oc)
	// Another connector's route changes nothing the office connector sees.
	if _, err := h.c.AddRoute(context.Background(), wire.AddRouteRequest{Prefix: "10.0.0.0/8", Connector: "lab"}); err != nil {
		t.Fatal(err)
	}
	// A later change that does affect it arrives, and nothing came before it.
	h.enroll(wire.RoleClient, "laptop")
	nm := nextNetMap(t, oc)
	if len(nm.Peers) != 1 || len(nm.Routes) != 0 {
		t.Errorf("office netmap after laptop enrolled: peers %v routes %v", nm.Peers, nm.Routes)
	}
}

func TestStreamEndsWhenNodeRemoved(t *testing.T) {
	h := newHarness(t)
	laptop := h.enroll(wire.RoleClient, "laptop")
	lc := newFakeConn()
	done := h.serve(laptop.Node, lc)
	nextNetMap(t, lc)
	if err := h.c.RemoveNode(context.Background(), "laptop"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrNodeRemoved) {
			t.Errorf("ServeStream = %v, want ErrNodeRemoved", err)
		}
	case <-time.After(time.Second):
		t.Fatal("stream still open 1s after the node was removed")
	}
	if _, err := h.c.AuthenticateNode(laptop.Credential); err == nil {
		t.Error("removed node's credential still accepted")
	}
}

func TestStreamHeartbeatTimeout(t *testing.T) {
	h := newHarness(t)
	laptop := h.enroll(wire.RoleClient, "laptop")
	lc := newFakeConn()
	lc.silent = true
	done := h.serve(laptop.Node, lc)
	nextNetMap(t, lc)
	// The node sends nothing: the coordinator gives up after the timeout
	// (300ms in the harness), having pinged meanwhile.
	select {
	case err := <-done:
		if !errors.Is(err, ErrHeartbeatTimeout) {
			t.Errorf("ServeStream = %v, want ErrHeartbeatTimeout", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("silent stream still open after 2s")
	}
	pings := 0
	for len(lc.out) > 0 {
		if (<-lc.out).Type == wire.MsgPing {
			pings++
		}
	}
	if pings == 0 {
		t.Error("coordinator sent no heartbeat before giving up")
	}
	eventually(t, time.Second, "laptop offline", func() bool { return !h.c.Nodes()[0].Online })
}

func TestStreamPingsKeepItAlive(t *testing.T) {
	h := newHarness(t)
	laptop := h.enroll(wire.RoleClient, "laptop")
	lc := newFakeConn()
	done := h.serve(laptop.Node, lc)
	nextNetMap(t, lc)
	// The fake answers every ping; for three timeouts' worth the stream
	// must stay up.
	select {
	case err := <-done:
		t.Fatalf("stream ended while the node was answering pings: %v", err)
	case <-time.After(900 * time.Millisecond):
	}
}
