package relay

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/overlay/wire"
)

// testPolicy allows every pair but those denied.
type testPolicy struct {
	mu     sync.Mutex // guards denied
	denied map[pair]bool
	calls  atomic.Int64
}

func (p *testPolicy) allowed(src, dst wire.Key) bool {
	p.calls.Add(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.denied[pair{src, dst}]
}

func (p *testPolicy) reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	clear(p.denied)
}

func (p *testPolicy) deny(src, dst wire.Key, deny bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.denied == nil {
		p.denied = map[pair]bool{}
	}
	p.denied[pair{src, dst}] = deny
}

// relayHarness is a Server on a loopback socket.
type relayHarness struct {
	t      *testing.T
	key    []byte
	srv    *Server
	addr   netip.AddrPort
	clock  *testClock
	policy *testPolicy
	stop   func()
}

type harnessOpt func(*ServerConfig)

func withNodeRate(r int64) harnessOpt { return func(c *ServerConfig) { c.NodeRate = r } }

func newRelay(t *testing.T, opts ...harnessOpt) *relayHarness {
	t.Helper()
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	return serveRelay(t, pc, mustKey(t), opts...)
}

func serveRelay(t *testing.T, pc *net.UDPConn, key []byte, opts ...harnessOpt) *relayHarness {
	t.Helper()
	h := &relayHarness{t: t, key: key, clock: &testClock{}, policy: &testPolicy{}, addr: pc.LocalAddr().(*net.UDPAddr).AddrPort()}
	cfg := ServerConfig{Key: h.key, Allowed: h.policy.allowed, Logger: testLogger(t), Now: h.clock.Now}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ctx, pc) }()
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-errc; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(h.stop)
	return h
}

// wantStats waits until the server's counters are want (the write loop
// counts a datagram just after sending it), failing the test with the
// difference after a deadline.
func (h *relayHarness) wantStats(want Stats) {
	h.t.Helper()
	var diff string
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		if diff = cmp.Diff(want, h.srv.Stats()); diff == "" {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("relay stats (-want +got):\n%s", diff)
		}
		<-tick.C
	}
}

// fakeNode speaks the relay protocol by hand over a loopback socket.
type fakeNode struct {
	t     *testing.T
	h     *relayHarness
	conn  *net.UDPConn
	key   wire.Key
	cred  *nodeCredential
	relay netip.AddrPort
	ts    uint64
}

func (h *relayHarness) node(role wire.Role) *fakeNode {
	h.t.Helper()
	return h.nodeWith(h.key, role, h.clock.Now().Add(time.Hour))
}

func (h *relayHarness) nodeWith(key []byte, role wire.Role, expires time.Time) *fakeNode {
	h.t.Helper()
	var pub wire.Key
	rand.Read(pub[:])
	cred, err := parseNodeCredential(Issue(key, Claims{NodeID: "n-" + pub.Hex()[:8], PublicKey: pub, Role: role, Expires: expires}))
	if err != nil {
		h.t.Fatal(err)
	}
	n := &fakeNode{t: h.t, h: h, key: pub, cred: cred, relay: h.addr}
	n.conn = listenLoopback(h.t)
	return n
}

func listenLoopback(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func (n *fakeNode) send(b []byte) {
	n.t.Helper()
	if _, err := n.conn.WriteToUDPAddrPort(b, n.relay); err != nil {
		n.t.Fatal(err)
	}
}

// hello sends a HELLO with a new timestamp and returns it.
func (n *fakeNode) hello() []byte {
	n.t.Helper()
	n.ts++
	b := appendHello(nil, n.cred, n.ts)
	n.send(b)
	return b
}

// register sends a HELLO and waits for its genuine ACK.
func (n *fakeNode) register() {
	n.t.Helper()
	n.hello()
	b, f := n.recv()
	if f.Type != TypeHelloAck || f.Timestamp != n.ts || !checkAck(n.cred, b, f) {
		n.t.Fatalf("after HELLO got %v frame %+v, want a genuine ACK of %d", f.Type, f, n.ts)
	}
	if want := n.conn.LocalAddr().(*net.UDPAddr).AddrPort(); f.Observed != want {
		n.t.Errorf("ACK observed %v, want %v", f.Observed, want)
	}
}

func (n *fakeNode) sendData(dst wire.Key, payload string) {
	n.t.Helper()
	b, err := Frame{Type: TypeData, Key: dst, Payload: []byte(payload)}.Append(nil)
	if err != nil {
		n.t.Fatal(err)
	}
	n.send(b)
}

// recv returns the next frame, failing the test after a deadline.
func (n *fakeNode) recv() ([]byte, Frame) {
	n.t.Helper()
	b, f, err := n.tryRecv(5 * time.Second)
	if err != nil {
		n.t.Fatalf("receiving: %v", err)
	}
	return b, f
}

func (n *fakeNode) tryRecv(d time.Duration) ([]byte, Frame, error) {
	buf := make([]byte, MaxFrameLen)
	if err := n.conn.SetReadDeadline(time.Now().Add(d)); err != nil {
		return nil, Frame{}, err
	}
	for {
		m, from, err := n.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return nil, Frame{}, err
		}
		if from != n.relay {
			continue
		}
		b := append([]byte(nil), buf[:m]...)
		f, err := Parse(b)
		return b, f, err
	}
}

// expectData fails unless the next frame is DATA from src carrying payload.
func (n *fakeNode) expectData(src wire.Key, payload string) {
	n.t.Helper()
	_, f := n.recv()
	if f.Type != TypeData || f.Key != src || string(f.Payload) != payload {
		n.t.Fatalf("got %v frame (key %v, payload %q, code %v), want data from %v: %q", f.Type, f.Key, f.Payload, f.Code, src, payload)
	}
}

// expectRefusal fails unless the next frame is an ERROR with code and key.
func (n *fakeNode) expectRefusal(code Code, key wire.Key) {
	n.t.Helper()
	_, f := n.recv()
	if f.Type != TypeError || f.Code != code || f.Key != key {
		n.t.Fatalf("got %v frame (code %v, key %v, payload %q), want refusal %q about %v", f.Type, f.Code, f.Key, f.Payload, code, key)
	}
}

func TestServerForwards(t *testing.T) {
	checkNoLeaks(t)
	h := newRelay(t)
	a, b := h.node(wire.RoleClient), h.node(wire.RoleConnector)
	a.register()
	b.register()
	a.sendData(b.key, "to b")
	b.expectData(a.key, "to b")
	b.sendData(a.key, "back to a")
	a.expectData(b.key, "back to a")
	h.wantStats(Stats{Registrations: 2, Hellos: 2, Forwarded: 2, ForwardedBytes: 4 + 9, Replies: 2})
	if got := h.policy.calls.Load(); got != 2 {
		t.Errorf("policy asked %d times, want 2 (once per direction)", got)
	}
}

func TestServerRefuses(t *testing.T) {
	checkNoLeaks(t)
	tests := []struct {
		name string
		run  func(t *testing.T, h *relayHarness, a, b *fakeNode) Drops
	}{{
		name: "policy says no",
		run: func(t *testing.T, h *relayHarness, a, b *fakeNode) Drops {
			h.policy.deny(a.key, b.key, true)
			a.sendData(b.key, "refused")
			a.expectRefusal(CodeNotAllowed, b.key)
			// The reverse direction is a separate question.
			b.sendData(a.key, "allowed")
			a.expectData(b.key, "allowed")
			return Drops{NotAllowed: 1}
		},
	}, {
		name: "each destination is checked on its own",
		run: func(t *testing.T, h *relayHarness, a, b *fakeNode) Drops {
			// Frames from one source in a row skip the checks the one
			// before passed, but only for the same destination.
			c := h.node(wire.RoleConnector)
			c.register()
			h.policy.deny(a.key, c.key, true)
			a.sendData(b.key, "one")
			a.sendData(c.key, "refused")
			a.sendData(b.key, "two")
			b.expectData(a.key, "one")
			a.expectRefusal(CodeNotAllowed, c.key)
			b.expectData(a.key, "two")
			return Drops{NotAllowed: 1}
		},
	}, {
		name: "revoked while registered",
		run: func(t *testing.T, h *relayHarness, a, b *fakeNode) Drops {
			a.sendData(b.key, "before")
			b.expectData(a.key, "before")
			h.policy.deny(a.key, b.key, true)
			h.clock.Advance(allowedTTL) // the cached answer runs out
			a.sendData(b.key, "after")
			a.expectRefusal(CodeNotAllowed, b.key)
			return Drops{NotAllowed: 1}
		},
	}, {
		name: "unregistered source",
		run: func(t *testing.T, h *relayHarness, a, b *fakeNode) Drops {
			c := h.node(wire.RoleClient)
			c.sendData(b.key, "from c")
			c.expectRefusal(CodeNotRegistered, wire.Key{})
			return Drops{NotRegistered: 1}
		},
	}, {
		name: "unknown destination",
		run: func(t *testing.T, h *relayHarness, a, b *fakeNode) Drops {
			stranger := testPub(0x77)
			a.sendData(stranger, "to nobody")
			a.expectRefusal(CodeUnknownPeer, stranger)
			return Drops{UnknownPeer: 1}
		},
	}, {
		name: "to itself",
		run: func(t *testing.T, h *relayHarness, a, b *fakeNode) Drops {
			a.sendData(a.key, "loop")
			a.expectRefusal(CodeNotAllowed, a.key)
			return Drops{NotAllowed: 1}
		},
	}, {
		name: "spoofed source",
		run: func(t *testing.T, h *relayHarness, a, b *fakeNode) Drops {
			// Mallory saw a's HELLO and has a's claims, not its secret.
			mallory := &fakeNode{t: t, h: h, conn: listenLoopback(t), relay: h.addr}
			captured := appendHello(nil, a.cred, a.ts)
			mallory.send(captured) // replayed from elsewhere
			mallory.expectRefusal(CodeStale, wire.Key{})
			h.clock.Advance(replyInterval)
			forged := &nodeCredential{claims: a.cred.claims, parsed: a.cred.parsed} // zero tag
			mallory.send(appendHello(nil, forged, a.ts+100))
			mallory.expectRefusal(CodeBadCredential, wire.Key{})
			h.clock.Advance(replyInterval)
			mallory.sendData(b.key, "as a")
			mallory.expectRefusal(CodeNotRegistered, wire.Key{})
			// a is still registered where it was.
			b.sendData(a.key, "to the real a")
			a.expectData(b.key, "to the real a")
			return Drops{Stale: 1, BadCredential: 1, NotRegistered: 1}
		},
	}, {
		name: "source registration expired",
		run: func(t *testing.T, h *relayHarness, a, b *fakeNode) Drops {
			h.clock.Advance(RegistrationTimeout)
			a.sendData(b.key, "late")
			a.expectRefusal(CodeNotRegistered, wire.Key{})
			a.register() // b has expired too
			h.clock.Advance(replyInterval)
			a.sendData(b.key, "late again")
			a.expectRefusal(CodeUnknownPeer, b.key)
			h.clock.Advance(replyInterval)
			b.register()
			return Drops{NotRegistered: 1, UnknownPeer: 1}
		},
	}, {
		name: "kept alive",
		run: func(t *testing.T, h *relayHarness, a, b *fakeNode) Drops {
			for range 3 {
				h.clock.Advance(RegistrationTimeout / 2)
				a.register()
				b.register()
			}
			return Drops{}
		},
	}, {
		name: "credential expired",
		run: func(t *testing.T, h *relayHarness, a, b *fakeNode) Drops {
			short := h.nodeWith(h.key, wire.RoleClient, h.clock.Now().Add(10*time.Second))
			short.register()
			short.sendData(b.key, "in time")
			b.expectData(short.key, "in time")
			h.clock.Advance(10 * time.Second)
			short.sendData(b.key, "too late")
			short.expectRefusal(CodeExpired, wire.Key{})
			h.clock.Advance(replyInterval)
			short.hello()
			short.expectRefusal(CodeExpired, wire.Key{})
			// Registered nodes' traffic goes on.
			h.clock.Advance(replyInterval)
			a.register()
			b.register()
			return Drops{Expired: 2}
		},
	}, {
		name: "credential from another coordinator",
		run: func(t *testing.T, h *relayHarness, a, b *fakeNode) Drops {
			other := h.nodeWith(mustKey(t), wire.RoleClient, h.clock.Now().Add(time.Hour))
			other.hello()
			other.expectRefusal(CodeBadCredential, wire.Key{})
			return Drops{BadCredential: 1}
		},
	}, {
		name: "malformed",
		run: func(t *testing.T, h *relayHarness, a, b *fakeNode) Drops {
			a.send([]byte("GET / HTTP/1.1\r\n\r\n"))
			a.send([]byte{Magic, Version, byte(TypeError), 1})
			ack, _ := Frame{Type: TypeHelloAck}.Append(nil)
			a.send(ack)
			return Drops{Malformed: 3}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newRelay(t)
			a, b := h.node(wire.RoleClient), h.node(wire.RoleConnector)
			a.register()
			b.register()
			before := h.srv.Stats()
			want := tt.run(t, h, a, b)
			// Nothing refused got through: b's next frame is this.
			h.policy.reset()
			h.clock.Advance(allowedTTL)
			a.register()
			b.register()
			a.sendData(b.key, "marker")
			b.expectData(a.key, "marker")
			got := h.srv.Stats().Dropped
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("drops (-want +got):\n%s", diff)
			}
			if n := h.srv.Stats().Forwarded - before.Forwarded; n > 3 {
				t.Errorf("forwarded %d datagrams, want at most the 3 the test meant to", n)
			}
		})
	}
}

func TestServerDuplicateHello(t *testing.T) {
	h := newRelay(t)
	a := h.node(wire.RoleClient)
	hello := a.hello()
	a.recv()
	a.send(hello) // the network duplicated it
	_, f := a.recv()
	if f.Type != TypeHelloAck || f.Timestamp != a.ts {
		t.Fatalf("duplicate HELLO got %v frame, want ACK of %d", f.Type, a.ts)
	}
	if d := h.srv.Stats().Dropped; d != (Drops{}) {
		t.Errorf("drops: got %+v, want none", d)
	}
}

func TestServerNATRebinding(t *testing.T) {
	checkNoLeaks(t)
	h := newRelay(t)
	a, b := h.node(wire.RoleClient), h.node(wire.RoleConnector)
	a.register()
	b.register()
	b.sendData(a.key, "first")
	a.expectData(b.key, "first")

	// a's NAT gives it a new public port: same node, new socket.
	old := *a
	a.conn = listenLoopback(t)
	a.register()
	b.sendData(a.key, "second")
	a.expectData(b.key, "second")
	a.sendData(b.key, "from the new address")
	b.expectData(a.key, "from the new address")

	// The old address is no longer a's.
	old.sendData(b.key, "from the old address")
	old.expectRefusal(CodeNotRegistered, wire.Key{})
	h.wantStats(Stats{Registrations: 2, Hellos: 3, Forwarded: 3, ForwardedBytes: 5 + 6 + 20, Replies: 4, Dropped: Drops{NotRegistered: 1}})
}

func TestServerAddressTakenOver(t *testing.T) {
	h := newRelay(t)
	a, b, c := h.node(wire.RoleClient), h.node(wire.RoleConnector), h.node(wire.RoleClient)
	a.register()
	b.register()
	// a goes away and its NAT gives the same address to c.
	c.conn = a.conn
	c.register()
	c.sendData(b.key, "from c")
	b.expectData(c.key, "from c")
	b.sendData(a.key, "to a")
	b.expectRefusal(CodeUnknownPeer, a.key)
}

// TestServerFlood checks that a node sending as fast as it can does not
// stop another pair's traffic.
func TestServerFlood(t *testing.T) {
	// floodFor bounds the flood and, with it still running, the other
	// pair's 50 datagrams: about 10 s alone under -race, past 20 s with
	// other packages' tests on the same two cores. The flood lasts as long
	// as the wait, so no datagram gets through after it.
	const floodFor = 40 * time.Second
	for _, tt := range []struct {
		name string
		opts []harnessOpt
	}{
		{"queues only", nil},
		{"node rate", []harnessOpt{withNodeRate(256 << 10)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			checkNoLeaks(t)
			h := newRelay(t, tt.opts...)
			flooder, sink := h.node(wire.RoleClient), h.node(wire.RoleConnector)
			c, d := h.node(wire.RoleClient), h.node(wire.RoleConnector)
			for _, n := range []*fakeNode{flooder, sink, c, d} {
				n.register()
			}
			flood, err := Frame{Type: TypeData, Key: sink.key, Payload: make([]byte, 1200)}.Append(nil)
			if err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Go(func() {
				end := time.Now().Add(floodFor)
				for i := 0; i < 5_000_000 && time.Now().Before(end); i++ {
					select {
					case <-stop:
						return
					default:
					}
					flooder.conn.WriteToUDPAddrPort(flood, h.addr)
				}
			})
			defer wg.Wait()
			defer close(stop)

			// c sends d 50 numbered datagrams, each resent until it
			// arrives: the kernel may drop some while the flood runs,
			// but every one must get through, and soon.
			const rounds = 50
			deadline := time.Now().Add(floodFor)
			for i := range rounds {
				want := fmt.Sprint("seq ", i)
				for delivered := false; !delivered; {
					if time.Now().After(deadline) {
						t.Fatalf("only %d of %d datagrams got through the flood", i, rounds)
					}
					c.sendData(d.key, want)
					for {
						_, f, err := d.tryRecv(100 * time.Millisecond)
						if errors.Is(err, os.ErrDeadlineExceeded) {
							break
						}
						if err != nil {
							t.Fatal(err)
						}
						if f.Type == TypeData && string(f.Payload) == want {
							delivered = true
							break
						}
					}
				}
			}
			if tt.opts != nil {
				waitFor(t, "rate-limited drops", func() bool { return h.srv.Stats().Dropped.RateLimited > 0 })
			}
			t.Logf("stats: %+v", h.srv.Stats())
		})
	}
}

func TestSchedRoundRobin(t *testing.T) {
	s := newSched()
	var qa, qb, qc queue
	pkt := func(tag byte) outPkt { return outPkt{buf: []byte{tag}, data: true} }
	for range queueLen {
		if !s.push(&qa, pkt('a')) {
			t.Fatal("queue a full too early")
		}
	}
	if s.push(&qa, pkt('a')) {
		t.Errorf("push to a full queue succeeded")
	}
	for range 3 {
		s.push(&qb, pkt('b'))
	}
	s.push(&qc, pkt('c'))
	s.pushCtl(outPkt{buf: []byte{'!'}}, ctlLen)

	var got []byte
	for _, p := range s.take(make([]outPkt, 0, 10)) {
		got = append(got, p.buf[0])
	}
	if want := "!abcababaa"; string(got) != want {
		t.Errorf("first batch: got %q, want %q", got, want)
	}
	// A batch that ends mid-round resumes where it stopped.
	s.push(&qb, pkt('b'))
	s.push(&qc, pkt('c'))
	got = got[:0]
	for _, p := range s.take(make([]outPkt, 0, 3)) {
		got = append(got, p.buf[0])
	}
	if want := "bca"; string(got) != want {
		t.Errorf("second batch: got %q, want %q", got, want)
	}
	total := 0
	for {
		ps := s.take(make([]outPkt, 0, writeBatch))
		if len(ps) == 0 {
			break
		}
		total += len(ps)
	}
	if want := queueLen - 6; total != want {
		t.Errorf("drained %d, want %d", total, want)
	}
	if qa.n != 0 || qa.bytes != 0 || qa.active || len(s.active) != 0 {
		t.Errorf("after draining: queue %+v, active %d", qa, len(s.active))
	}
}

func TestSchedByteBound(t *testing.T) {
	s := newSched()
	var q queue
	big := outPkt{buf: make([]byte, queueBytes/2), data: true}
	if !s.push(&q, big) || !s.push(&q, big) {
		t.Fatal("two half-size datagrams do not fit")
	}
	if s.push(&q, outPkt{buf: []byte{1}}) {
		t.Error("a full queue took one more byte")
	}
}

func TestServerLifecycle(t *testing.T) {
	checkNoLeaks(t)
	h := newRelay(t)
	a := h.node(wire.RoleClient)
	a.register()
	if err := h.srv.Close(); err != nil {
		t.Fatal(err)
	}
	h.stop() // Serve returned nil
	if err := h.srv.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	pc := listenLoopback(t)
	if err := h.srv.Serve(context.Background(), pc); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Close: got %v, want ErrServerClosed", err)
	}
	// Serve closed the socket it was given.
	if _, err := pc.WriteToUDPAddrPort([]byte("x"), h.addr); !errors.Is(err, net.ErrClosed) {
		t.Errorf("writing to the socket Serve refused: got %v, want net.ErrClosed", err)
	}
}

func TestServerStopsWithContext(t *testing.T) {
	checkNoLeaks(t)
	srv, err := NewServer(ServerConfig{Key: mustKey(t), Allowed: func(_, _ wire.Key) bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ctx, pc) }()
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
}

func TestServerSocketClosedUnderneath(t *testing.T) {
	checkNoLeaks(t)
	srv, err := NewServer(ServerConfig{Key: mustKey(t), Allowed: func(_, _ wire.Key) bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	pc := listenLoopback(t)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(context.Background(), pc) }()
	waitFor(t, "serving", func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		return srv.serving
	})
	pc.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Serve: got %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after its socket closed")
	}
}

func TestServerConfigValidate(t *testing.T) {
	allow := func(_, _ wire.Key) bool { return true }
	key := mustKey(t)
	tests := []struct {
		name string
		cfg  ServerConfig
		ok   bool
	}{
		{"ok", ServerConfig{Key: key, Allowed: allow}, true},
		{"short key", ServerConfig{Key: key[:16], Allowed: allow}, false},
		{"no policy", ServerConfig{Key: key}, false},
		{"negative rate", ServerConfig{Key: key, Allowed: allow, NodeRate: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewServer(tt.cfg)
			if (err == nil) != tt.ok {
				t.Errorf("NewServer: got %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestRefusalsAreLimitedAndSmall(t *testing.T) {
	h := newRelay(t)
	c := h.node(wire.RoleClient) // never registers
	for range 5 {
		c.sendData(testPub(1), "x")
	}
	b, _ := c.recv()
	if len(b) > DataHeaderLen+1 {
		t.Errorf("refusal of %d bytes answers a %d-byte datagram: amplification", len(b), DataHeaderLen+1)
	}
	h.wantStats(Stats{Replies: 1, Dropped: Drops{NotRegistered: 5, ReplyLimited: 4}})
}

// TestSchedClaim checks that one sender at a time holds the claim, and
// that releasing it with datagrams left wakes the write loop.
func TestSchedClaim(t *testing.T) {
	s := newSched()
	var q queue
	for i := range writeBatch + 1 {
		s.push(&q, outPkt{buf: []byte{byte(i)}, data: true})
	}
	first := s.claim(make([]outPkt, 0, writeBatch))
	if len(first) != writeBatch {
		t.Fatalf("first claim took %d, want %d", len(first), writeBatch)
	}
	if got := s.claim(make([]outPkt, 0, writeBatch)); len(got) != 0 {
		t.Fatalf("a second claim while the first is held took %d", len(got))
	}
	select {
	case <-s.wake:
	default:
	}
	s.release()
	select {
	case <-s.wake:
	default:
		t.Fatal("release with a datagram left did not wake the write loop")
	}
	rest := s.claim(make([]outPkt, 0, writeBatch))
	if len(rest) != 1 || rest[0].buf[0] != writeBatch {
		t.Fatalf("after release: claimed %v, want the last datagram", rest)
	}
	s.release()
	if got := s.claim(make([]outPkt, 0, writeBatch)); len(got) != 0 || s.sending {
		t.Errorf("claim of empty queues took %d, holds the claim %v", len(got), s.sending)
	}
}
