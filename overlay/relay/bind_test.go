package relay

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/warrennet/warren/overlay/wire"
)

// received is one datagram a ReceiveFunc returned.
type received struct {
	data string
	ep   string
}

// testBind is a Bind opened on a random port with its receive loop
// running.
type testBind struct {
	t    *testing.T
	b    *Bind
	key  wire.Key
	cred string
	port uint16
	rx   chan received
	errc chan error // the receive loop's final error
}

// newTestBind opens a Bind that uses the relay only: these tests are
// about the relay path (direct_test.go has the direct one).
func newTestBind(t *testing.T, h *relayHarness, cfg BindConfig) *testBind {
	t.Helper()
	cfg.RelayOnly = true
	return openTestBind(t, h, cfg, nil)
}

// openTestBind opens a Bind with cfg; setup, if not nil, adjusts it
// before it opens.
func openTestBind(t *testing.T, h *relayHarness, cfg BindConfig, setup func(*Bind)) *testBind {
	t.Helper()
	tb := &testBind{t: t, rx: make(chan received, 1024), errc: make(chan error, 1)}
	rand.Read(tb.key[:])
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	tb.b = NewBind(cfg)
	if setup != nil {
		setup(tb.b)
	}
	if h != nil {
		tb.cred = Issue(h.key, Claims{NodeID: "n-" + tb.key.Hex()[:8], PublicKey: tb.key, Role: wire.RoleClient, Expires: h.clock.Now().Add(time.Hour)})
		tb.b.SetRelay(h.addr, tb.cred)
	}
	tb.open()
	t.Cleanup(func() { tb.b.Close() })
	return tb
}

func (tb *testBind) open() {
	tb.t.Helper()
	fns, port, err := tb.b.Open(0)
	if err != nil {
		tb.t.Fatal(err)
	}
	if len(fns) != 1 || port == 0 {
		tb.t.Fatalf("Open: got %d receive funcs and port %d", len(fns), port)
	}
	tb.port = port
	errc := make(chan error, 1)
	tb.errc = errc
	go func() { errc <- receiveLoop(fns[0], tb.b.BatchSize(), tb.rx) }()
}

// receiveLoop calls fn as wireguard-go does until it fails.
func receiveLoop(fn conn.ReceiveFunc, batch int, rx chan<- received) error {
	bufs := make([][]byte, batch)
	for i := range bufs {
		bufs[i] = make([]byte, 65535)
	}
	sizes := make([]int, batch)
	eps := make([]conn.Endpoint, batch)
	for {
		n, err := fn(bufs, sizes, eps)
		if err != nil {
			return err
		}
		for i := range n {
			if sizes[i] == 0 {
				continue
			}
			rx <- received{data: string(bufs[i][:sizes[i]]), ep: eps[i].DstToString()}
		}
	}
}

func (tb *testBind) waitConnected() {
	tb.t.Helper()
	waitFor(tb.t, "relay registration", tb.b.Connected)
}

func (tb *testBind) send(to wire.Key, datagrams ...string) error {
	ep, err := tb.b.ParseEndpoint(EndpointPrefix + to.String())
	if err != nil {
		return err
	}
	bufs := make([][]byte, len(datagrams))
	for i, d := range datagrams {
		bufs[i] = []byte(d)
	}
	return tb.b.Send(bufs, ep)
}

// expect fails unless the next datagrams received are want, from src.
func (tb *testBind) expect(src wire.Key, want ...string) {
	tb.t.Helper()
	for _, w := range want {
		select {
		case got := <-tb.rx:
			if got.data != w || got.ep != EndpointPrefix+src.String() {
				tb.t.Fatalf("received %q from %s, want %q from %s%s", got.data, got.ep, w, EndpointPrefix, src)
			}
		case <-time.After(5 * time.Second):
			tb.t.Fatalf("timed out waiting for %q", w)
		}
	}
}

func TestBindThroughRelay(t *testing.T) {
	checkNoLeaks(t)
	h := newRelay(t)
	a, b := newTestBind(t, h, BindConfig{}), newTestBind(t, h, BindConfig{})
	a.waitConnected()
	b.waitConnected()
	if err := a.send(b.key, "one", "two", "three"); err != nil {
		t.Fatal(err)
	}
	b.expect(a.key, "one", "two", "three")
	if err := b.send(a.key, "back"); err != nil {
		t.Fatal(err)
	}
	a.expect(b.key, "back")

	st := a.b.Status()
	if st.Relay != h.addr || !st.Connected || st.LastAck.IsZero() || st.Observed.Port() != a.port {
		t.Errorf("status: got %+v, want connected to %v, observed port %d", st, h.addr, a.port)
	}
	want := Stats{Registrations: 2, Hellos: 2, Forwarded: 4, ForwardedBytes: 3 + 3 + 5 + 4, Replies: 2}
	if h.srv.gso.Load() {
		// "one" and "two" are one run; "three", longer, starts another.
		want.Runs, want.RunFrames = 1, 2
	}
	h.wantStats(want)

	// A batch larger than one sendmmsg.
	var many []string
	for i := range 2*conn.IdealBatchSize + 3 {
		many = append(many, fmt.Sprint("datagram ", i))
	}
	for i := 0; i < len(many); i += conn.IdealBatchSize {
		if err := a.send(b.key, many[i:min(i+conn.IdealBatchSize, len(many))]...); err != nil {
			t.Fatal(err)
		}
	}
	received := map[string]bool{}
	deadline := time.After(5 * time.Second)
	for len(received) < len(many) {
		select {
		case got := <-b.rx:
			received[got.data] = true
		case <-deadline:
			// Loopback may drop under a burst; most must arrive.
			if len(received) < len(many)/2 {
				t.Fatalf("received %d of %d datagrams", len(received), len(many))
			}
			return
		}
	}
}

// TestBindHoldsUntilRegistered: what wireguard-go sends while the
// Bind's registration is not confirmed yet (a handshake initiation, the
// moment `warren up` configures the peer) is sent once it is, not left
// for wireguard-go to retry 5 s later.
func TestBindHoldsUntilRegistered(t *testing.T) {
	checkNoLeaks(t)
	h := newRelay(t)
	b := newTestBind(t, h, BindConfig{})
	b.waitConnected()
	a := newTestBind(t, h, BindConfig{})
	if a.b.Connected() {
		t.Fatal("registered before the relay could answer")
	}
	if err := a.send(b.key, "initiation", "another"); err != nil {
		t.Fatal(err)
	}
	b.expect(a.key, "initiation", "another")
	if err := a.send(b.key, "after"); err != nil {
		t.Fatal(err)
	}
	b.expect(a.key, "after")

	// A renewed credential for the same relay holds nothing back: the
	// relay honours the registration it has until the new HELLO lands.
	a.b.SetRelay(h.addr, Issue(h.key, Claims{NodeID: "n-" + a.key.Hex()[:8], PublicKey: a.key, Role: wire.RoleClient, Expires: h.clock.Now().Add(2 * time.Hour)}))
	if !a.b.registered(a.b.live.Load(), a.b.target.Load()) {
		t.Error("datagrams are held after a credential renewal")
	}
	if err := a.send(b.key, "renewed"); err != nil {
		t.Fatal(err)
	}
	b.expect(a.key, "renewed")
}

func TestBindOpenClose(t *testing.T) {
	checkNoLeaks(t)
	h := newRelay(t)
	tb := newTestBind(t, h, BindConfig{})
	tb.waitConnected()
	if _, _, err := tb.b.Open(0); !errors.Is(err, conn.ErrBindAlreadyOpen) {
		t.Errorf("second Open: got %v, want ErrBindAlreadyOpen", err)
	}
	if err := tb.b.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-tb.errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("ReceiveFunc after Close: got %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock the ReceiveFunc")
	}
	if tb.b.Connected() {
		t.Error("closed Bind reports connected")
	}
	if err := tb.send(testPub(1), "x"); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Send after Close: got %v, want net.ErrClosed", err)
	}
	if err := tb.b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	// wireguard-go's BindUpdate: open again, on the port it had.
	old := tb.port
	fns, port, err := tb.b.Open(old)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	if port != old {
		t.Errorf("reopened on port %d, want %d", port, old)
	}
	errc := make(chan error, 1)
	go func() { errc <- receiveLoop(fns[0], tb.b.BatchSize(), tb.rx) }()
	tb.waitConnected()
	other := newTestBind(t, h, BindConfig{})
	other.waitConnected()
	if err := other.send(tb.key, "after reopen"); err != nil {
		t.Fatal(err)
	}
	tb.expect(other.key, "after reopen")
	tb.b.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Errorf("ReceiveFunc after second Close: got %v, want net.ErrClosed", err)
	}
}

func TestBindParseEndpoint(t *testing.T) {
	b := NewBind(BindConfig{})
	k := testPub(0x42)
	tests := []struct {
		in      string
		wantErr bool
	}{
		{in: EndpointPrefix + k.String()},
		{in: k.String(), wantErr: true},
		{in: "198.51.100.20:51820", wantErr: true},
		{in: "relay:", wantErr: true},
		{in: "relay:notakey", wantErr: true},
		{in: "RELAY:" + k.String(), wantErr: true},
		{in: "relay:" + k.Hex(), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			ep, err := b.ParseEndpoint(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseEndpoint(%q): got error %v, want error %v", tt.in, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if got := ep.DstToString(); got != tt.in {
				t.Errorf("DstToString: got %q, want %q (UAPI get must read back what set wrote)", got, tt.in)
			}
			if got := ep.(*Endpoint).Key(); got != k {
				t.Errorf("Key: got %v, want %v", got, k)
			}
			if !ep.DstIP().IsValid() || ep.SrcIP().IsValid() || ep.SrcToString() != "" || string(ep.DstToBytes()) != string(k[:]) {
				t.Errorf("endpoint %+v: unexpected addresses", ep)
			}
		})
	}
	other := testPub(0x43)
	e1, _ := b.ParseEndpoint(EndpointPrefix + k.String())
	e2, _ := b.ParseEndpoint(EndpointPrefix + other.String())
	if e1.DstIP() == e2.DstIP() {
		t.Error("two peers share a DstIP; wireguard-go's rate limiter would lump them together")
	}
}

func TestBindNoRelay(t *testing.T) {
	checkNoLeaks(t)
	tb := newTestBind(t, nil, BindConfig{})
	if err := tb.send(testPub(1), "x"); !errors.Is(err, ErrNoRelay) {
		t.Errorf("Send without a relay: got %v, want ErrNoRelay", err)
	}
	tb.b.SetRelay(netip.MustParseAddrPort("127.0.0.1:9"), "not a credential")
	if err := tb.send(testPub(1), "x"); !errors.Is(err, ErrNoRelay) {
		t.Errorf("Send with a bad credential: got %v, want ErrNoRelay", err)
	}
	if _, err := tb.b.ParseEndpoint("127.0.0.1:9"); err == nil {
		t.Error("ParseEndpoint took an address")
	}
	if err := tb.b.Send([][]byte{[]byte("x")}, otherEndpoint{}); !errors.Is(err, conn.ErrWrongEndpointType) {
		t.Errorf("Send to a foreign endpoint: got %v, want ErrWrongEndpointType", err)
	}
	if err := tb.b.SetMark(0); err != nil {
		t.Errorf("SetMark(0): %v", err)
	}
	if err := tb.b.SetMark(51820); err == nil {
		t.Error("SetMark(51820) claims to work")
	}
}

type otherEndpoint struct{ conn.Endpoint }

// TestBindSetRelay checks that a new relay or credential takes effect at
// once, not at the next keepalive.
func TestBindSetRelay(t *testing.T) {
	checkNoLeaks(t)
	h1, h2 := newRelay(t), newRelay(t)
	tb := newTestBind(t, h1, BindConfig{KeepaliveInterval: time.Hour})
	tb.waitConnected()
	if got := h1.srv.Stats().Hellos; got != 1 {
		t.Errorf("relay 1 accepted %d HELLOs, want 1", got)
	}

	// The same values again change nothing.
	tb.b.SetRelay(h1.addr, tb.cred)
	if !tb.b.Connected() {
		t.Error("setting the same relay again disconnected")
	}

	// The first relay's ACK does not count for a new one. (A relay
	// that never answers, so that no ACK can race the check.)
	cred2 := Issue(h2.key, Claims{NodeID: "n", PublicKey: tb.key, Role: wire.RoleClient, Expires: time.Now().Add(time.Hour)})
	silent := listenLoopback(t).LocalAddr().(*net.UDPAddr).AddrPort()
	tb.b.SetRelay(silent, cred2)
	if st := tb.b.Status(); st.Connected || st.Relay != silent {
		t.Errorf("just after SetRelay: got %+v, want relay %v, not connected", st, silent)
	}
	tb.b.SetRelay(h2.addr, cred2)
	waitFor(t, "registration at the new relay", func() bool { return tb.b.Connected() && h2.srv.Stats().Hellos == 1 })

	// A credential the relay refuses leaves the Bind disconnected, and
	// says why.
	tb.b.SetRelay(h2.addr, Issue(mustKey(t), Claims{NodeID: "n", PublicKey: tb.key, Role: wire.RoleClient, Expires: time.Now().Add(time.Hour)}))
	waitFor(t, "the refusal", func() bool { return tb.b.Status().LastRefusal == CodeBadCredential })
	if tb.b.Connected() {
		t.Error("connected with a refused credential")
	}

	// Turning the relay off.
	tb.b.SetRelay(netip.AddrPort{}, "")
	if err := tb.send(testPub(1), "x"); !errors.Is(err, ErrNoRelay) {
		t.Errorf("Send with the relay off: got %v, want ErrNoRelay", err)
	}
}

// TestBindIgnoresStrangers checks that only the relay's address is heard.
func TestBindIgnoresStrangers(t *testing.T) {
	checkNoLeaks(t)
	h := newRelay(t)
	a, b := newTestBind(t, h, BindConfig{}), newTestBind(t, h, BindConfig{})
	a.waitConnected()
	b.waitConnected()
	stranger := listenLoopback(t)
	forged, _ := Frame{Type: TypeData, Key: a.key, Payload: []byte("forged")}.Append(nil)
	if _, err := stranger.WriteToUDPAddrPort(forged, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), b.port)); err != nil {
		t.Fatal(err)
	}
	// A forged ACK from the relay's address but not MACed by it would
	// be ignored too; the marker shows nothing else got through.
	if err := a.send(b.key, "marker"); err != nil {
		t.Fatal(err)
	}
	b.expect(a.key, "marker")
}

// TestBindRelayRestart checks that a node re-registers at once when the
// relay has forgotten it, not at its next keepalive.
func TestBindRelayRestart(t *testing.T) {
	checkNoLeaks(t)
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().(*net.UDPAddr)
	key := mustKey(t)
	h := serveRelay(t, pc, key)
	a, b := newTestBind(t, h, BindConfig{KeepaliveInterval: time.Hour}), newTestBind(t, h, BindConfig{KeepaliveInterval: time.Hour})
	a.waitConnected()
	b.waitConnected()
	h.stop()

	pc2, err := net.ListenUDP("udp4", addr)
	if err != nil {
		t.Fatalf("reopening the relay's port: %v", err)
	}
	h2 := serveRelay(t, pc2, key)
	// Each Bind learns from its first refused datagram that the relay
	// forgot it, and sends a HELLO; resend until it has.
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("traffic did not resume after the relay restarted; relay stats %+v", h2.srv.Stats())
		}
		a.send(b.key, fmt.Sprint("ping ", i))
		b.send(a.key, fmt.Sprint("pong ", i))
		select {
		case got := <-b.rx:
			if got.ep != EndpointPrefix+a.key.String() {
				t.Fatalf("received from %s", got.ep)
			}
			if h2.srv.Stats().Hellos < 2 {
				t.Errorf("relay saw %d HELLOs, want both nodes' again", h2.srv.Stats().Hellos)
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestBindResendsUnansweredHello checks that a HELLO lost at start is
// resent well before the keepalive interval.
func TestBindResendsUnansweredHello(t *testing.T) {
	checkNoLeaks(t)
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().(*net.UDPAddr)
	key := mustKey(t)
	tb := newTestBind(t, nil, BindConfig{KeepaliveInterval: time.Hour})
	var pub wire.Key
	copy(pub[:], tb.key[:])
	tb.b.SetRelay(addr.AddrPort(), Issue(key, Claims{NodeID: "n", PublicKey: pub, Role: wire.RoleConnector, Expires: time.Now().Add(time.Hour)}))
	// The first HELLO reaches a socket that is not a relay yet.
	buf := make([]byte, 2048)
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := pc.ReadFromUDPAddrPort(buf); err != nil {
		t.Fatalf("no first HELLO: %v", err)
	}
	h := serveRelay(t, pc, key)
	waitFor(t, "registration after a resent HELLO", tb.b.Connected)
	if got := h.srv.Stats().Hellos; got != 1 {
		t.Errorf("relay accepted %d HELLOs, want 1", got)
	}
}
