package relay

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/warrennet/warren/overlay/wire"
)

func TestDiscoRoundTrip(t *testing.T) {
	tok := token{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	for _, d := range []Disco{
		{Type: DiscoCall, Token: tok, Candidates: []netip.AddrPort{netipMust("198.51.100.20:41641"), netipMust("[2001:db8::1]:7")}},
		{Type: DiscoCall, Token: tok},
		{Type: DiscoPing, TxID: 1<<63 + 5, Token: tok},
		{Type: DiscoPong, TxID: 42, Observed: netipMust("10.1.0.2:9")},
		{Type: DiscoPong, TxID: 43},
	} {
		b, err := d.Append(nil)
		if err != nil {
			t.Fatalf("%v: Append: %v", d.Type, err)
		}
		got, err := ParseDisco(b)
		if err != nil {
			t.Fatalf("%v: ParseDisco: %v", d.Type, err)
		}
		if diff := cmp.Diff(d, got, cmpopts.EquateEmpty(), cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
			t.Errorf("%v round trip (-want +got):\n%s", d.Type, diff)
		}
		if b[0] == Magic || (b[0] >= 1 && b[0] <= 4) {
			t.Errorf("%v starts with 0x%02x, which a relay frame or WireGuard message could", d.Type, b[0])
		}
	}
}

func TestParseDiscoRejects(t *testing.T) {
	ping, _ := Disco{Type: DiscoPing, TxID: 1}.Append(nil)
	call, _ := Disco{Type: DiscoCall, Candidates: []netip.AddrPort{netipMust("192.0.2.1:1")}}.Append(nil)
	zeroCand := slices.Clone(call)
	clear(zeroCand[discoFixedLen+1:])
	for _, tt := range []struct {
		name string
		b    []byte
		err  error
	}{
		{"empty", nil, ErrMalformed},
		{"short", ping[:discoFixedLen-1], ErrMalformed},
		{"bad magic", append([]byte{Magic}, ping[1:]...), ErrMalformed},
		{"other version", append([]byte{DiscoMagic, 2}, ping[2:]...), ErrUnsupportedVersion},
		{"unknown type", append([]byte{DiscoMagic, DiscoVersion, 9}, ping[3:]...), ErrMalformed},
		{"ping too long", append(slices.Clone(ping), 0), ErrMalformed},
		{"pong too short", append([]byte{DiscoMagic, DiscoVersion, byte(DiscoPong)}, ping[3:]...), ErrMalformed},
		{"call count too big", append(slices.Clone(call[:discoFixedLen]), 2), ErrMalformed},
		{"call count over max", append(slices.Clone(call[:discoFixedLen]), maxCandidates+1), ErrMalformed},
		{"call without count", call[:discoFixedLen], ErrMalformed},
		{"call zero candidate", zeroCand, ErrMalformed},
	} {
		if _, err := ParseDisco(tt.b); !errors.Is(err, tt.err) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.err)
		}
	}
	if _, err := (Disco{Type: DiscoCall, Candidates: make([]netip.AddrPort, maxCandidates+1)}).Append(nil); err == nil {
		t.Error("Append of a call with too many candidates succeeded")
	}
}

// FuzzParseDisco checks that ParseDisco never panics, and that whatever
// it accepts encodes back to the same bytes.
func FuzzParseDisco(f *testing.F) {
	for _, d := range []Disco{
		{Type: DiscoCall, Candidates: []netip.AddrPort{netipMust("198.51.100.20:41641")}},
		{Type: DiscoPing, TxID: 7},
		{Type: DiscoPong, TxID: 7, Observed: netipMust("10.1.0.2:9")},
	} {
		b, err := d.Append(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{DiscoMagic, DiscoVersion})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDisco(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupportedVersion) {
				t.Fatalf("ParseDisco: unexpected error kind %v", err)
			}
			return
		}
		out, err := d.Append(nil)
		if err != nil {
			t.Fatalf("Append of a parsed message: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("round trip changed the message:\n in  %x\n out %x", b, out)
		}
	})
}

func TestUsableCandidates(t *testing.T) {
	b := NewBind(BindConfig{Exclude: func(a netip.Addr) bool { return netip.MustParsePrefix("192.168.0.0/24").Contains(a) }})
	for _, tt := range []struct {
		ap   string
		want bool
	}{
		{"198.51.100.20:41641", true},
		{"[2001:db8::1]:7", true},
		{"192.168.0.2:41641", false}, // routed into the tunnel
		{"127.0.0.1:41641", false},
		{"[::1]:41641", false},
		{"169.254.1.1:41641", false},
		{"[fe80::1]:41641", false},
		{"224.0.0.1:41641", false},
		{"0.0.0.0:41641", false},
		{"198.51.100.20:0", false},
	} {
		if got := b.usable(netipMust(tt.ap)); got != tt.want {
			t.Errorf("usable(%s) = %v, want %v", tt.ap, got, tt.want)
		}
	}
}

// addr is where the relay, and a peer on this host, reach tb.
func (tb *testBind) addr() netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), tb.port)
}

// newDirectTestBind opens a Bind that may find a direct path, offering
// only its loopback address, so that tests run the same on every host.
func newDirectTestBind(t *testing.T, h *relayHarness, cfg BindConfig) *testBind {
	t.Helper()
	return openTestBind(t, h, cfg, func(b *Bind) {
		b.allowLoopback = true
		b.listAddrs = func() ([]netip.Addr, error) { return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil }
	})
}

// directPair opens two Binds that may go direct, and waits until a
// datagram from a to b has found them a direct path both ways.
func directPair(t *testing.T) (a, b *testBind) {
	t.Helper()
	h := newRelay(t)
	a, b = newDirectTestBind(t, h, BindConfig{}), newDirectTestBind(t, h, BindConfig{})
	a.waitConnected()
	b.waitConnected()
	a.send(b.key, "hello")
	b.expect(a.key, "hello")
	waitFor(t, "a direct path", func() bool { return a.b.Direct(b.key).IsValid() && b.b.Direct(a.key).IsValid() })
	return a, b
}

// reopen closes tb's Bind and opens it again, on a new port, as
// wireguard-go does on a BindUpdate and the daemon on `warren up`.
func (tb *testBind) reopen() {
	tb.t.Helper()
	if err := tb.b.Close(); err != nil {
		tb.t.Fatal(err)
	}
	if err := <-tb.errc; !errors.Is(err, net.ErrClosed) {
		tb.t.Fatalf("receive loop after Close: %v, want net.ErrClosed", err)
	}
	tb.open()
}

// TestDirectPath checks that two nodes that can reach each other find a
// direct path through the CALLs the relay carries, then carry their
// datagrams on it, plain, without the relay.
func TestDirectPath(t *testing.T) {
	checkNoLeaks(t)
	h := newRelay(t)
	a, b := newDirectTestBind(t, h, BindConfig{}), newDirectTestBind(t, h, BindConfig{})
	a.waitConnected()
	b.waitConnected()

	// The first datagram goes through the relay and starts discovery.
	if err := a.send(b.key, "first"); err != nil {
		t.Fatal(err)
	}
	b.expect(a.key, "first")
	waitFor(t, "a direct path both ways", func() bool {
		return a.b.Direct(b.key) == b.addr() && b.b.Direct(a.key) == a.addr()
	})
	if err := b.send(a.key, "back"); err != nil {
		t.Fatal(err)
	}
	a.expect(b.key, "back")

	// From now on the relay carries nothing: datagrams, runs of them
	// included, go direct.
	before := h.srv.Stats().Forwarded
	var burst []string
	for i := range 100 {
		burst = append(burst, string(rune('a'+i%26))+" direct datagram of a burst")
	}
	for range 3 {
		if err := a.send(b.key, burst...); err != nil {
			t.Fatal(err)
		}
		b.expect(a.key, burst...)
	}
	if after := h.srv.Stats().Forwarded; after != before {
		t.Errorf("the relay forwarded %d datagrams while the direct path was up", after-before)
	}
}

// TestDirectPathLost checks that traffic survives a direct path that
// dies silently (the peer rebinds: its old address leads nowhere), and
// that a new direct path follows.
func TestDirectPathLost(t *testing.T) {
	checkNoLeaks(t)
	a, b := directPair(t)
	old := a.b.Direct(b.key)

	// b closes and reopens on a new port: a's path now leads nowhere,
	// and b, silent, does not say so.
	b.reopen()
	b.waitConnected()
	deliveredAgain(t, a, b, 200*time.Millisecond, 3*trustFor)
	waitFor(t, "a new direct path", func() bool {
		d := a.b.Direct(b.key)
		return d.IsValid() && d != old && d == b.addr()
	})
}

// TestDirectPathAfterPeerRestart: a peer that takes its tunnel down and
// up again (a new socket) starts with a handshake initiation through the
// relay; the response must reach it at once, although this node's direct
// path to the old socket still looks fine. (It used to go down that path
// alone, and the handshake waited for wireguard-go's retry 5 s later.)
func TestDirectPathAfterPeerRestart(t *testing.T) {
	checkNoLeaks(t)
	a, b := directPair(t)
	b.reopen() // and, without waiting for the relay's ACK, the handshake
	initiation := string(append([]byte{1, 0, 0, 0}, bytes.Repeat([]byte{7}, 144)...))
	if err := b.send(a.key, initiation); err != nil {
		t.Fatal(err)
	}
	a.expect(b.key, initiation)
	if err := a.send(b.key, "response"); err != nil {
		t.Fatal(err)
	}
	b.expect(a.key, "response") // sent once: through the relay too
	waitFor(t, "a direct path to the new socket", func() bool { return a.b.Direct(b.key) == b.addr() })
}

// TestDirectPathRefused checks that no direct path forms when either
// side is RelayOnly or excludes the other's address, and that traffic
// flows through the relay all the same.
func TestDirectPathRefused(t *testing.T) {
	for _, tt := range []struct {
		name string
		a, b BindConfig
	}{
		{"relay only", BindConfig{RelayOnly: true}, BindConfig{}},
		{"excluded", BindConfig{}, BindConfig{Exclude: func(netip.Addr) bool { return true }}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			checkNoLeaks(t)
			h := newRelay(t)
			a, b := newDirectTestBind(t, h, tt.a), newDirectTestBind(t, h, tt.b)
			a.waitConnected()
			b.waitConnected()
			for i := range 3 {
				if err := a.send(b.key, "via relay"); err != nil {
					t.Fatal(err)
				}
				b.expect(a.key, "via relay")
				if err := b.send(a.key, "and back"); err != nil {
					t.Fatal(err)
				}
				a.expect(b.key, "and back")
				if i < 2 {
					time.Sleep(discoTick)
				}
			}
			if d := a.b.Direct(b.key); d.IsValid() {
				t.Errorf("a found a direct path to %v", d)
			}
			if d := b.b.Direct(a.key); d.IsValid() {
				t.Errorf("b found a direct path to %v", d)
			}
		})
	}
}

// TestDirectPathIdle checks that a direct path goes when its peer falls
// idle (NAT mappings lapse without traffic), and that traffic resuming
// finds one again.
func TestDirectPathIdle(t *testing.T) {
	checkNoLeaks(t)
	h := newRelay(t)
	idle := func(b *Bind) {
		b.allowLoopback = true
		b.listAddrs = func() ([]netip.Addr, error) { return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil }
		b.idleAfter = 2 * discoTick
	}
	a, b := openTestBind(t, h, BindConfig{}, idle), openTestBind(t, h, BindConfig{}, idle)
	a.waitConnected()
	b.waitConnected()
	a.send(b.key, "hello")
	b.expect(a.key, "hello")
	waitFor(t, "a direct path", func() bool { return a.b.Direct(b.key).IsValid() })
	waitFor(t, "the idle path gone", func() bool { return !a.b.Direct(b.key).IsValid() && !b.b.Direct(a.key).IsValid() })
	a.send(b.key, "again")
	b.expect(a.key, "again")
	waitFor(t, "a direct path again", func() bool { return a.b.Direct(b.key).IsValid() })
}

// TestCallsCannotDrivePings checks that a peer calling in a tight loop
// makes this node ping its candidates no faster than once a second: an
// enrolled peer cannot turn the Bind into a packet source aimed at
// addresses of its choosing.
func TestCallsCannotDrivePings(t *testing.T) {
	checkNoLeaks(t)
	h := newRelay(t)
	a := newDirectTestBind(t, h, BindConfig{})
	a.waitConnected()
	victim := listenLoopback(t)
	call, err := Disco{Type: DiscoCall, Token: token{1}, Candidates: []netip.AddrPort{victim.LocalAddr().(*net.UDPAddr).AddrPort()}}.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	d := a.b.live.Load().disco
	for range 200 {
		d.onRelayed(testPub(9), call)
	}
	got := 0
	buf := make([]byte, 128)
	victim.SetReadDeadline(time.Now().Add(discoTick / 2))
	for {
		if _, _, err := victim.ReadFromUDPAddrPort(buf); err != nil {
			break
		}
		got++
	}
	if got != 1 {
		t.Errorf("200 calls in a burst made %d pings, want 1", got)
	}
}

// TestDirectPathAfterLostCall checks that a node answers a peer's CALL
// even when it has just sent one of its own, which the relay may have
// dropped: here b was not registered yet when a called. The path must
// follow b's CALL at once, not a's next one seconds later.
func TestDirectPathAfterLostCall(t *testing.T) {
	checkNoLeaks(t)
	h := newRelay(t)
	a := newDirectTestBind(t, h, BindConfig{})
	a.waitConnected()
	b := openTestBind(t, nil, BindConfig{}, func(b *Bind) {
		b.allowLoopback = true
		b.listAddrs = func() ([]netip.Addr, error) { return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil }
	})
	a.send(b.key, "to nobody yet") // a CALLs b: the relay knows no b
	waitFor(t, "the relay refusing a's call", func() bool { return h.srv.Stats().Dropped.UnknownPeer > 0 })

	b.cred = Issue(h.key, Claims{NodeID: "n-b", PublicKey: b.key, Role: wire.RoleClient, Expires: h.clock.Now().Add(time.Hour)})
	b.b.SetRelay(h.addr, b.cred)
	b.waitConnected()
	start := time.Now()
	b.send(a.key, "hello")
	a.expect(b.key, "hello")
	waitFor(t, "a direct path", func() bool { return a.b.Direct(b.key).IsValid() && b.b.Direct(a.key).IsValid() })
	if took := time.Since(start); took > firstCallWait {
		t.Errorf("the direct path took %v, as long as waiting for a's next CALL", took)
	}
}

// testNAT stands between a node and the relay like a NAT that can
// rebind: the relay sees the node at the NAT's outside address, which
// rebind changes. It carries only relay traffic.
type testNAT struct {
	t      *testing.T
	inside *net.UDPConn
	relay  netip.AddrPort
	mu     sync.Mutex // guards out and node
	out    *net.UDPConn
	node   netip.AddrPort
}

func newTestNAT(t *testing.T, relay netip.AddrPort) *testNAT {
	n := &testNAT{t: t, inside: listenLoopback(t), relay: relay}
	n.rebind()
	go func() {
		buf := make([]byte, MaxFrameLen)
		for {
			m, from, err := n.inside.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.node = from
			out := n.out
			n.mu.Unlock()
			out.WriteToUDPAddrPort(buf[:m], n.relay)
		}
	}()
	return n
}

func (n *testNAT) addr() netip.AddrPort { return n.inside.LocalAddr().(*net.UDPAddr).AddrPort() }

// rebind gives the node a new outside address.
func (n *testNAT) rebind() {
	out := listenLoopback(n.t)
	n.mu.Lock()
	old := n.out
	n.out = out
	n.mu.Unlock()
	if old != nil {
		old.Close()
	}
	go func() {
		buf := make([]byte, MaxFrameLen)
		for {
			m, _, err := out.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			node := n.node
			n.mu.Unlock()
			n.inside.WriteToUDPAddrPort(buf[:m], node)
		}
	}()
}

// logRecorder keeps the messages logged through it.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *logRecorder) WithGroup(string) slog.Handler            { return r }
func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	line := rec.Message
	rec.Attrs(func(a slog.Attr) bool { line += " " + a.String(); return true })
	r.mu.Lock()
	r.msgs = append(r.msgs, line)
	r.mu.Unlock()
	return nil
}

func (r *logRecorder) count(substr string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.msgs {
		if strings.Contains(m, substr) {
			n++
		}
	}
	return n
}

// TestDirectPathAfterRebinding checks that when the relay starts seeing
// a node at a new address (its NAT rebound, or the laptop moved), the
// node gives up its direct paths at once and finds new ones, rather than
// wait for the old ones to time out.
func TestDirectPathAfterRebinding(t *testing.T) {
	checkNoLeaks(t)
	h := newRelay(t)
	nat := newTestNAT(t, h.addr)
	rec := &logRecorder{}
	a := openTestBind(t, nil, BindConfig{Logger: slog.New(rec), KeepaliveInterval: 200 * time.Millisecond}, func(b *Bind) {
		b.allowLoopback = true
		b.listAddrs = func() ([]netip.Addr, error) { return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil }
		// The NAT's outside address carries relay traffic only.
		b.exclude = func(netip.Addr) bool { return false }
	})
	a.cred = Issue(h.key, Claims{NodeID: "n-a", PublicKey: a.key, Role: wire.RoleClient, Expires: h.clock.Now().Add(time.Hour)})
	a.b.SetRelay(nat.addr(), a.cred)
	b := newDirectTestBind(t, h, BindConfig{})
	a.waitConnected()
	b.waitConnected()
	before := a.b.Status().Observed

	a.send(b.key, "hello")
	b.expect(a.key, "hello")
	waitFor(t, "a direct path", func() bool { return a.b.Direct(b.key) == b.addr() })

	nat.rebind()
	waitFor(t, "the relay seeing a at its new address", func() bool {
		o := a.b.Status().Observed
		return o.IsValid() && o != before
	})
	waitFor(t, "a dropping its paths for the new address", func() bool { return rec.count("public address changed") > 0 })
	a.send(b.key, "again")
	b.expect(a.key, "again")
	waitFor(t, "a direct path again", func() bool { return a.b.Direct(b.key) == b.addr() })
}

// TestDatagramsFromAPingingPeer checks that a node takes datagrams from
// an address its peer has proved to hold (a PING with the right token)
// before confirming a path of its own: the peer may confirm first and
// send there at once.
func TestDatagramsFromAPingingPeer(t *testing.T) {
	checkNoLeaks(t)
	h := newRelay(t)
	a := newDirectTestBind(t, h, BindConfig{})
	a.waitConnected()
	peer := listenLoopback(t)
	k := testPub(7)
	d := a.b.live.Load().disco
	d.mu.Lock()
	mine := d.peer(a.b.endpoint(k)).mine
	d.mu.Unlock()

	wg := []byte{4, 0, 0, 0, 'w', 'g', ' ', 'd', 'a', 't', 'a', 'g', 'r', 'a', 'm', ' ', 'o', 'f', ' ', 'a', ' ', 'p', 'e', 'e', 'r', ' ', 'a', 'l', 'r', 'e', 'a', 'd', 'y', ' ', 'd', 'i', 'r', 'e', 'c', 't'}
	to := a.addr()
	// From an address that has not pinged: dropped.
	peer.WriteToUDPAddrPort(wg, to)
	ping, _ := Disco{Type: DiscoPing, TxID: 1, Token: mine}.Append(nil)
	if _, err := peer.WriteToUDPAddrPort(ping, to); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 128)
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		n, _, err := peer.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("no pong: %v", err)
		}
		if m, err := ParseDisco(buf[:n]); err == nil && m.Type == DiscoPong && m.TxID == 1 {
			break
		}
	}
	peer.WriteToUDPAddrPort(wg, to)
	select {
	case got := <-a.rx:
		if got.data != string(wg) || got.ep != EndpointPrefix+k.String() {
			t.Fatalf("received %q from %s, want the datagram from %s", got.data, got.ep, k)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the datagram from the pinging peer did not arrive")
	}
	select {
	case got := <-a.rx:
		t.Errorf("also received %q: the datagram sent before the ping got through", got.data)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestIsHandshakeInitiation(t *testing.T) {
	initiation := append([]byte{1, 0, 0, 0}, make([]byte, 144)...)
	for _, tt := range []struct {
		name string
		b    []byte
		want bool
	}{
		{"initiation", initiation, true},
		{"one byte short", initiation[:147], false},
		{"one byte long", append(slices.Clone(initiation), 0), false},
		{"a response", append([]byte{2, 0, 0, 0}, make([]byte, 144)...), false},
		{"transport data of that size", append([]byte{4, 0, 0, 0}, make([]byte, 144)...), false},
		{"reserved bytes set", append([]byte{1, 0, 1, 0}, make([]byte, 144)...), false},
		{"empty", nil, false},
	} {
		if got := isHandshakeInitiation(tt.b); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

// deliveredAgain sends from a to b every gap until a datagram arrives,
// after a's direct path died, and returns how long that took; it fails
// the test if nothing arrives within limit.
func deliveredAgain(t *testing.T, a, b *testBind, gap, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for delivered := false; !delivered; {
		if time.Since(start) > limit {
			t.Fatalf("nothing got through for %v after the direct path died", time.Since(start))
		}
		a.send(b.key, "still there?")
		select {
		case got := <-b.rx:
			delivered = got.data == "still there?"
		case <-time.After(gap):
		}
	}
	took := time.Since(start)
	t.Logf("delivered again after %v", took.Round(time.Millisecond))
	return took
}
