package relay

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/warrennet/warren/overlay/wire"
)

// directServer is a Server whose packet handler the test drives itself,
// as its read loop would, with any source address and a clock that moves
// only when told: no socket and no goroutines, so a flood of a million
// spoofed datagrams a second is exact and repeatable.
type directServer struct {
	t   *testing.T
	s   *Server
	rs  *readState
	key []byte
	now time.Time
}

func newDirectServer(t *testing.T) *directServer {
	t.Helper()
	key := mustKey(t)
	s, err := NewServer(ServerConfig{Key: key, Allowed: func(_, _ wire.Key) bool { return true }, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return &directServer{t: t, s: s, rs: newReadState(), key: key, now: time.Unix(1_800_000_000, 0)}
}

// feed hands pkt, from from, to the server as its read loop would.
func (d *directServer) feed(pkt []byte, from netip.AddrPort) {
	if d.now.Sub(d.rs.lastSweep) >= sweepInterval {
		d.s.sweep(d.rs, d.now)
	}
	buf := append([]byte(nil), pkt...)
	d.rs.cur, d.rs.curBuf, d.rs.curOff = 0, buf, 0
	d.s.handle(d.rs, d.now, buf, from)
	d.rs.cur, d.rs.curBuf = -1, nil
	d.s.flushRun(d.rs, d.now)
}

// drain returns everything the server queued to send, control frames
// first, as the write loop would take it.
func (d *directServer) drain() []outPkt {
	var all []outPkt
	for {
		out := d.s.sched.take(make([]outPkt, 0, writeBatch))
		if len(out) == 0 {
			return all
		}
		all = append(all, out...)
	}
}

// synthNode is a node at a made-up address.
type synthNode struct {
	key  wire.Key
	cred *nodeCredential
	addr netip.AddrPort
	ts   uint64
}

func (d *directServer) synthNode(role wire.Role, addr string, seed byte) *synthNode {
	d.t.Helper()
	pub := testPub(seed)
	cred, err := parseNodeCredential(Issue(d.key, Claims{NodeID: fmt.Sprintf("n%d", seed), PublicKey: pub, Role: role, Expires: d.now.Add(time.Hour)}))
	if err != nil {
		d.t.Fatal(err)
	}
	return &synthNode{key: pub, cred: cred, addr: netip.MustParseAddrPort(addr)}
}

// hello returns a HELLO with a new timestamp.
func (n *synthNode) hello() []byte {
	n.ts++
	return appendHello(nil, n.cred, n.ts)
}

func (n *synthNode) data(dst wire.Key, payload string) []byte {
	b, _ := Frame{Type: TypeData, Key: dst, Payload: []byte(payload)}.Append(nil)
	return b
}

// spoofed returns the i-th of many made-up source addresses, IPv4 and
// IPv6 in turn, none of them the nodes'.
func spoofed(i int) netip.AddrPort {
	if i%2 == 0 {
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], 0x0a000000|uint32(i))
		return netip.AddrPortFrom(netip.AddrFrom4(a), uint16(1024+i%60000))
	}
	var a [16]byte
	copy(a[:], []byte{0x20, 0x01, 0x0d, 0xb8})
	binary.BigEndian.PutUint32(a[4:], uint32(i))
	a[15] = 1
	return netip.AddrPortFrom(netip.AddrFrom16(a), uint16(1024+i%60000))
}

// TestHelloFloodFromSpoofedSources floods the relay with HELLOs from
// spoofed addresses, 200,000 a second for a second, while two registered nodes keep
// refreshing their registrations and exchanging DATA, and one of them
// moves to a new address: every HELLO of theirs must be acknowledged and
// every datagram forwarded. The relay's sender is slow (it takes what is
// queued only every 2,000 datagrams), so refusals pile up as they would
// under load.
func TestHelloFloodFromSpoofedSources(t *testing.T) {
	const (
		rate     = 200_000 // flood datagrams per simulated second
		duration = time.Second
		every    = 2000 // flood datagrams between the nodes' turns (10 ms)
		helloAt  = 20   // turns between a node's HELLOs (200 ms)
	)
	tests := []struct {
		name string
		// flood returns the i-th flood datagram and its source.
		flood func(d *directServer, a, mallory *synthNode, captured []byte, i int) ([]byte, netip.AddrPort)
	}{{
		name: "forged credentials",
		flood: func(d *directServer, a, _ *synthNode, _ []byte, i int) ([]byte, netip.AddrPort) {
			var pub wire.Key
			binary.BigEndian.PutUint64(pub[:], uint64(i)+1)
			nc := &nodeCredential{claims: marshalClaims(Claims{NodeID: "x", PublicKey: pub, Role: wire.RoleClient, Expires: d.now.Add(time.Hour)})}
			return appendHello(nil, nc, uint64(i)), spoofed(i)
		},
	}, {
		name: "a's claims with a forged MAC",
		flood: func(d *directServer, a, _ *synthNode, _ []byte, i int) ([]byte, netip.AddrPort) {
			nc := &nodeCredential{claims: a.cred.claims}
			return appendHello(nil, nc, a.ts+uint64(i)+1), spoofed(i)
		},
	}, {
		name: "a's captured HELLO replayed from other addresses",
		flood: func(_ *directServer, _, _ *synthNode, captured []byte, i int) ([]byte, netip.AddrPort) {
			return captured, spoofed(i)
		},
	}, {
		name: "a's captured HELLO replayed from a's own address",
		flood: func(_ *directServer, a, _ *synthNode, captured []byte, _ int) ([]byte, netip.AddrPort) {
			return captured, a.addr
		},
	}, {
		name: "a credential holder's new HELLOs from spoofed addresses",
		flood: func(_ *directServer, _, mallory *synthNode, _ []byte, i int) ([]byte, netip.AddrPort) {
			return mallory.hello(), spoofed(i)
		},
	}, {
		name: "a credential holder's new HELLOs from a's address",
		flood: func(_ *directServer, a, mallory *synthNode, _ []byte, i int) ([]byte, netip.AddrPort) {
			return mallory.hello(), netip.AddrPortFrom(a.addr.Addr(), uint16(20000+i%40000))
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDirectServer(t)
			a := d.synthNode(wire.RoleClient, "198.51.100.1:4000", 1)
			b := d.synthNode(wire.RoleConnector, "203.0.113.2:5000", 2)
			mallory := d.synthNode(wire.RoleClient, "192.0.2.66:6666", 3)
			captured := a.hello()
			d.feed(captured, a.addr)
			d.feed(b.hello(), b.addr)
			d.drain()

			var sentHellos, sentData int
			acks := map[netip.AddrPort]map[uint64]bool{} // by address, the timestamps acknowledged
			data := map[netip.AddrPort]int{}
			count := func() {
				for _, p := range d.drain() {
					f, err := Parse(p.buf)
					to := p.addr.AddrPort()
					switch {
					case err != nil:
						t.Fatalf("relay sent an unparsable frame to %v: %v", to, err)
					case f.Type == TypeHelloAck && f.Timestamp == 1:
						// The captured HELLO, acknowledged again as a
						// duplicate: not one of the HELLOs counted.
					case f.Type == TypeHelloAck && (to == a.addr || to == b.addr):
						if acks[to] == nil {
							acks[to] = map[uint64]bool{}
						}
						acks[to][f.Timestamp] = true
					case f.Type == TypeData:
						data[to]++
					}
				}
			}
			step := duration / rate
			moveAt := rate * 3 / 4
			for i := range int(duration / step) {
				d.now = d.now.Add(step)
				pkt, from := tt.flood(d, a, mallory, captured, i)
				d.feed(pkt, from)
				if i == moveAt {
					// a's NAT gives it a new port in the middle of the
					// flood.
					a.addr = netip.AddrPortFrom(a.addr.Addr(), a.addr.Port()+1)
				}
				if i%every != every-1 {
					continue
				}
				// The nodes' turn: DATA both ways, and now and then (or
				// just after a moved) a HELLO from each, within what
				// each node's own budget allows.
				if turn := i / every; turn%helloAt == 0 || i == moveAt+every-1 {
					d.feed(a.hello(), a.addr)
					d.feed(b.hello(), b.addr)
					sentHellos++
				}
				d.feed(a.data(b.key, "to b"), a.addr)
				d.feed(b.data(a.key, "to a"), b.addr)
				sentData++
				count()
			}
			count()
			if got := len(acks[a.addr]) + len(acks[netip.AddrPortFrom(a.addr.Addr(), a.addr.Port()-1)]); got != sentHellos {
				t.Errorf("a's HELLOs acknowledged: %d, want %d", got, sentHellos)
			}
			if got := len(acks[b.addr]); got != sentHellos {
				t.Errorf("b's HELLOs acknowledged: %d, want %d", got, sentHellos)
			}
			if r := d.rs.byKey[a.key]; r == nil || r.addr != a.addr || !r.live(d.now) {
				t.Errorf("a's registration: %+v, want live at %v", r, a.addr)
			}
			if got := data[b.addr]; got != sentData {
				t.Errorf("datagrams forwarded a → b: %d, want %d", got, sentData)
			}
			if got := data[a.addr] + data[netip.AddrPortFrom(a.addr.Addr(), a.addr.Port()-1)]; got != sentData {
				t.Errorf("datagrams forwarded b → a: %d, want %d", got, sentData)
			}
			t.Logf("stats: %+v", d.s.Stats())
		})
	}
}

func BenchmarkOpenHello(b *testing.B) {
	key := make([]byte, KeyLen)
	nc, err := parseNodeCredential(Issue(key, Claims{NodeID: "node-1", PublicKey: testPub(1), Role: wire.RoleClient, Expires: time.Unix(2e9, 0)}))
	if err != nil {
		b.Fatal(err)
	}
	pkt := appendHello(nil, nc, 1)
	f, err := Parse(pkt)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Unix(1e9, 0)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := openHello(key, pkt, f, now); err != nil {
			b.Fatal(err)
		}
	}
}

func TestSourcePrefix(t *testing.T) {
	for _, tt := range []struct{ addr, want string }{
		{"198.51.100.7", "198.51.100.7/32"},
		{"::ffff:198.51.100.7", "198.51.100.7/32"},
		{"2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"},
		{"fe80::1%eth0", "fe80::/64"},
	} {
		if got := sourcePrefix(netip.MustParseAddr(tt.addr)); got.String() != tt.want {
			t.Errorf("sourcePrefix(%s) = %v, want %s", tt.addr, got, tt.want)
		}
	}
}

// TestHelloSourceBudget checks that one IPv6 /64 registering key after
// key runs out of its own budget only: a node registered there keeps
// refreshing, and other sources register as before.
func TestHelloSourceBudget(t *testing.T) {
	d := newDirectServer(t)
	a := d.synthNode(wire.RoleClient, "[2001:db8:1:2::a]:4000", 1)
	d.feed(a.hello(), a.addr)
	acked := func(n *synthNode) bool {
		t.Helper()
		d.feed(n.hello(), n.addr)
		for _, p := range d.drain() {
			if f, err := Parse(p.buf); err == nil && f.Type == TypeHelloAck && f.Timestamp == n.ts && p.addr.AddrPort() == n.addr {
				return true
			}
		}
		return false
	}
	// Keys registering from a's /64, all at once: the source's burst,
	// less the one a's registration took, gets through.
	accepted := 0
	for i := range 2 * sourceHelloBurst {
		n := d.synthNode(wire.RoleConnector, fmt.Sprintf("[2001:db8:1:2::%x]:5000", 0x1000+i), 9)
		n.key = testPub(0)
		binary.BigEndian.PutUint32(n.key[:], uint32(i)+1)
		cred, err := parseNodeCredential(Issue(d.key, Claims{NodeID: "m", PublicKey: n.key, Role: wire.RoleConnector, Expires: d.now.Add(time.Hour)}))
		if err != nil {
			t.Fatal(err)
		}
		n.cred = cred
		if acked(n) {
			accepted++
		}
	}
	if want := sourceHelloBurst - 1; accepted != want {
		t.Errorf("registrations from one /64: %d accepted, want %d", accepted, want)
	}
	if !acked(a) {
		t.Error("a's refresh from its registered address in the spent /64 was not acknowledged")
	}
	if b := d.synthNode(wire.RoleClient, "[2001:db8:1:3::1]:4000", 2); !acked(b) {
		t.Error("a registration from another /64 was not acknowledged")
	}
	if c := d.synthNode(wire.RoleClient, "[2001:db8:1:2:ffff::1]:4000", 3); acked(c) {
		t.Error("a registration from the spent /64 was acknowledged")
	}
}
