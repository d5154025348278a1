package relay

import (
	"net"
	"testing"
	"time"

	"github.com/warrennet/warren/overlay/wire"
)

// TestBindNetworkChanged: after the host's network changed (here its
// NAT's public address), NetworkChanged sends a HELLO at once, even
// within a second of the last, and holds what is sent meanwhile until the
// relay has moved the registration: nothing is lost to "not registered".
func TestBindNetworkChanged(t *testing.T) {
	checkNoLeaks(t)
	h := newRelay(t)
	nat := newTestNAT(t, h.addr)
	a := openTestBind(t, nil, BindConfig{RelayOnly: true}, nil)
	a.cred = Issue(h.key, Claims{NodeID: "n-a", PublicKey: a.key, Role: wire.RoleClient, Expires: h.clock.Now().Add(time.Hour)})
	a.b.SetRelay(nat.addr(), a.cred)
	b := newTestBind(t, h, BindConfig{})
	a.waitConnected()
	b.waitConnected()
	a.send(b.key, "before")
	b.expect(a.key, "before")
	before := a.b.Status().Observed

	nat.rebind()
	start := time.Now()
	a.b.NetworkChanged("test")
	for _, d := range []string{"right after the move", "and another"} {
		if err := a.send(b.key, d); err != nil {
			t.Fatal(err)
		}
	}
	b.expect(a.key, "right after the move", "and another")
	if took := time.Since(start); took > minHelloGap/2 {
		t.Errorf("delivered %v after the change: the HELLO waited", took)
	}
	if o := a.b.Status().Observed; !o.IsValid() || o == before {
		t.Errorf("the relay sees a at %v, want a new address (was %v)", o, before)
	}
	if err := b.send(a.key, "back"); err != nil {
		t.Fatal(err)
	}
	a.expect(b.key, "back")

	// A closed Bind ignores it.
	a.b.Close()
	a.b.NetworkChanged("closed")
}

// blackhole makes e's direct path on tb lead to a socket that never
// answers, as a path does once the NAT's public address changed: nothing
// on the wire says so.
func blackhole(t *testing.T, tb *testBind, k wire.Key) {
	t.Helper()
	hole := listenLoopback(t)
	addr := hole.LocalAddr().(*net.UDPAddr).AddrPort()
	e := tb.b.endpoint(k)
	old := e.direct.Load()
	if old == nil {
		t.Fatal("no direct path to replace")
	}
	p := &directPath{s: old.s, addr: addr, udp: net.UDPAddrFromAddrPort(addr), probeWait: minProbeWait}
	p.answered(time.Now().UnixNano())
	e.direct.Store(p)
}

// TestDirectPathDiesSilently: a node that keeps sending on a direct path
// that died without a word (its PONGs recent, so trusted) gets its
// datagrams through the relay within silentFor and probeWait, not
// trustFor, then drops the path and finds the live one again.
func TestDirectPathDiesSilently(t *testing.T) {
	checkNoLeaks(t)
	a, b := directPair(t)
	blackhole(t, a, b.key)
	bound := silentFor + minProbeWait + 300*time.Millisecond
	if took := deliveredAgain(t, a, b, 50*time.Millisecond, trustFor); took > bound {
		t.Errorf("delivered again after %v, want at most %v", took, bound)
	}
	// Traffic keeps the peer in use while the dead path goes (after
	// probeTimeout) and the live one is found again.
	pace := time.NewTicker(50 * time.Millisecond)
	defer pace.Stop()
	for deadline := time.Now().Add(probeTimeout + 5*time.Second); a.b.Direct(b.key) != b.addr(); <-pace.C {
		if time.Now().After(deadline) {
			t.Fatalf("direct path %v, want the live one %v again", a.b.Direct(b.key), b.addr())
		}
		a.send(b.key, "traffic")
		for drained := false; !drained; {
			select {
			case <-b.rx:
			default:
				drained = true
			}
		}
	}
}

// TestDirectPathOneWay: a live direct path carrying traffic one way only
// (nothing comes back to the sender) stays trusted: its probes are
// answered, and the relay carries no copies.
func TestDirectPathOneWay(t *testing.T) {
	checkNoLeaks(t)
	a, b := directPair(t)
	start := time.Now()
	n := 0
	pace := time.NewTicker(10 * time.Millisecond)
	defer pace.Stop()
	for ; time.Since(start) < 4*silentFor; <-pace.C {
		if err := a.send(b.key, "one way"); err != nil {
			t.Fatal(err)
		}
		b.expect(a.key, "one way")
		n++
	}
	e := a.b.endpoint(b.key)
	path := e.direct.Load()
	if path == nil || !path.trusted(time.Now().UnixNano()) {
		t.Fatalf("after %d datagrams one way, the direct path is %v, want trusted", n, path)
	}
	if path.lastProbe.Load() == 0 {
		t.Error("the silent path was never probed")
	}
}

// TestCallDoubtsDirectPath: a CALL from a peer this node has a direct
// path to (the peer lost its path: it moved) makes the path untrusted
// until it answers a PING, which a live path does at once.
func TestCallDoubtsDirectPath(t *testing.T) {
	checkNoLeaks(t)
	a, b := directPair(t)
	path := b.b.endpoint(a.key).direct.Load()
	a.b.live.Load().disco.sendCall(a.b.endpoint(b.key))
	waitFor(t, "b probing its path after a's CALL", func() bool { return path.lastProbe.Load() != 0 })
	waitFor(t, "the path answering", func() bool { return path.trusted(time.Now().UnixNano()) })
	if got := b.b.Direct(a.key); got != a.addr() {
		t.Errorf("b's direct path is %v, want %v", got, a.addr())
	}
}
