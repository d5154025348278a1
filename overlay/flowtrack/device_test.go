package flowtrack

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/tun"
)

// fakeTUN is the device under the filter: Read hands out queued packets,
// Write records what reached the laptop.
type fakeTUN struct {
	mu       sync.Mutex
	queued   [][]byte
	written  [][]byte
	writeErr error
}

func (f *fakeTUN) File() *os.File           { return nil }
func (f *fakeTUN) MTU() (int, error)        { return 1280, nil }
func (f *fakeTUN) Name() (string, error)    { return "fake0", nil }
func (f *fakeTUN) Events() <-chan tun.Event { return nil }
func (f *fakeTUN) Close() error             { return nil }
func (f *fakeTUN) BatchSize() int           { return 128 }

func (f *fakeTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for n < len(bufs) && len(f.queued) > 0 {
		sizes[n] = copy(bufs[n][offset:], f.queued[0])
		f.queued = f.queued[1:]
		n++
	}
	return n, nil
}

func (f *fakeTUN) Write(bufs [][]byte, offset int) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.writeErr != nil {
		return 0, f.writeErr
	}
	for _, b := range bufs {
		f.written = append(f.written, append([]byte{}, b[offset:]...))
	}
	return len(bufs), nil
}

// wgOffset is the headroom wireguard-go leaves before each packet.
const wgOffset = 16

// harness drives a Device the way wireguard-go does, on a fake clock.
type harness struct {
	t   *testing.T
	d   *Device
	tun *fakeTUN
	now time.Duration
}

func newHarness(t *testing.T, cfg Config) *harness {
	h := &harness{t: t, tun: &fakeTUN{}}
	h.d = New(h.tun, cfg)
	h.d.clock = func() int64 { return int64(h.now) }
	return h
}

// send has the laptop send pkts into the tunnel, in one Read.
func (h *harness) send(pkts ...[]byte) {
	h.t.Helper()
	h.tun.mu.Lock()
	h.tun.queued = append(h.tun.queued, pkts...)
	h.tun.mu.Unlock()
	bufs := make([][]byte, len(pkts))
	for i := range bufs {
		bufs[i] = make([]byte, wgOffset+len(pkts[i]))
	}
	sizes := make([]int, len(bufs))
	n, err := h.d.Read(bufs, sizes, wgOffset)
	if err != nil || n != len(pkts) {
		h.t.Fatalf("Read = %d, %v; want %d, nil", n, err, len(pkts))
	}
	for i := range n {
		if got := bufs[i][wgOffset : wgOffset+sizes[i]]; !bytes.Equal(got, pkts[i]) {
			h.t.Fatalf("Read changed packet %d", i)
		}
	}
}

// recv writes pkts from the tunnel in one Write and reports which reached
// the laptop.
func (h *harness) recv(pkts ...[]byte) []bool {
	h.t.Helper()
	h.tun.mu.Lock()
	h.tun.written = nil
	h.tun.mu.Unlock()
	bufs := make([][]byte, len(pkts))
	for i, p := range pkts {
		bufs[i] = append(make([]byte, wgOffset), p...)
	}
	n, err := h.d.Write(bufs, wgOffset)
	if err != nil || n != len(pkts) {
		h.t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(pkts))
	}
	h.tun.mu.Lock()
	defer h.tun.mu.Unlock()
	got := make([]bool, len(pkts))
	w := 0
	for i, p := range pkts {
		if w < len(h.tun.written) && bytes.Equal(h.tun.written[w], p) {
			got[i] = true
			w++
		}
	}
	if w != len(h.tun.written) {
		h.t.Fatalf("the laptop got %d packets, not in the order sent or not sent at all", len(h.tun.written))
	}
	return got
}

func TestFilter(t *testing.T) {
	sshFlow := tcp(ap(laptop4, 40000), ap(lan4, 22), syn)
	dnsFlow := udp(ap(laptop4, 50000), ap(lan4, 53))
	ping := echo(laptop4, lan4, 7, false)
	sshFlow6 := tcp(ap(laptop6, 40000), ap(lan6, 22), syn)
	dnsFlow6 := udp(ap(laptop6, 50000), ap(lan6, 53))
	ping6 := echo(laptop6, lan6, 7, false)
	bigReply := ipPacket(lan4, laptop4, protoUDP, udpDgram(53, 50000, bytes.Repeat([]byte("x"), 1500)))
	bigReply1, bigReply2 := fragment4(bigReply, 1024)
	stranger1, stranger2 := fragment4(ipPacket(lan4, laptop4, protoUDP, udpDgram(53, 50001, bytes.Repeat([]byte("x"), 1500))), 1024)
	bigReply6 := ipPacket(lan6, laptop6, protoUDP, udpDgram(53, 50000, bytes.Repeat([]byte("x"), 1500)))
	bigReply6a, bigReply6b := fragment6(bigReply6, 1024, 99)
	bigEcho1, bigEcho2 := fragment4(ipPacket(lan4, laptop4, protoICMP, append(echo(lan4, laptop4, 7, true)[20:], bytes.Repeat([]byte("p"), 1500)...)), 1024)
	fragErr1, _ := fragment4(ipPacket(conn4, laptop4, protoICMP, append(icmpError(conn4, laptop4, 3, 13, dnsFlow)[20:], bytes.Repeat([]byte("p"), 1500)...)), 1024)
	gre := ipPacket(conn4, laptop4, 47, make([]byte, 24))

	tests := []struct {
		name string
		sent [][]byte // the laptop sends these first
		wait time.Duration
		in   []byte // then this comes out of the tunnel
		want bool
	}{
		// Connections nobody on the laptop opened.
		{"unsolicited SYN from the connector", nil, 0, tcp(ap(conn4, 33333), ap(laptop4, 22), syn), false},
		{"unsolicited SYN from a LAN host", [][]byte{sshFlow}, 0, tcp(ap(lan4, 33333), ap(laptop4, 22), syn), false},
		{"unsolicited UDP", nil, 0, udp(ap(conn4, 53), ap(laptop4, 5353)), false},
		{"unsolicited echo request", nil, 0, echo(conn4, laptop4, 7, false), false},
		{"echo request with a recorded id", [][]byte{ping}, 0, echo(lan4, laptop4, 7, false), false},
		{"other protocol", nil, 0, gre, false},
		{"unsolicited SYN over IPv6", nil, 0, tcp(ap(lan6, 33333), ap(laptop6, 22), syn), false},

		// Answers to flows the laptop opened.
		{"TCP reply", [][]byte{sshFlow}, 0, tcp(ap(lan4, 22), ap(laptop4, 40000), syn|ack), true},
		{"TCP RST for a refused connection", [][]byte{sshFlow}, 0, tcp(ap(lan4, 22), ap(laptop4, 40000), rst|ack), true},
		{"TCP reply from another port", [][]byte{sshFlow}, 0, tcp(ap(lan4, 23), ap(laptop4, 40000), syn|ack), false},
		{"TCP reply to another laptop port", [][]byte{sshFlow}, 0, tcp(ap(lan4, 22), ap(laptop4, 40001), syn|ack), false},
		{"TCP reply from another host", [][]byte{sshFlow}, 0, tcp(ap(router4, 22), ap(laptop4, 40000), syn|ack), false},
		{"UDP reply to a TCP flow", [][]byte{sshFlow}, 0, udp(ap(lan4, 22), ap(laptop4, 40000)), false},
		{"UDP reply", [][]byte{dnsFlow}, 0, udp(ap(lan4, 53), ap(laptop4, 50000)), true},
		{"echo reply", [][]byte{ping}, 0, echo(lan4, laptop4, 7, true), true},
		{"echo reply with another id", [][]byte{ping}, 0, echo(lan4, laptop4, 8, true), false},
		{"echo reply from another host", [][]byte{ping}, 0, echo(router4, laptop4, 7, true), false},
		{"TCP reply over IPv6", [][]byte{sshFlow6}, 0, tcp(ap(lan6, 22), ap(laptop6, 40000), syn|ack), true},
		{"TCP reply over IPv6 after an extension header", [][]byte{sshFlow6}, 0, withExtHeader(tcp(ap(lan6, 22), ap(laptop6, 40000), syn|ack)), true},
		{"UDP reply over IPv6", [][]byte{dnsFlow6}, 0, udp(ap(lan6, 53), ap(laptop6, 50000)), true},
		{"ICMPv6 echo reply", [][]byte{ping6}, 0, echo(lan6, laptop6, 7, true), true},
		{"ICMPv4 echo reply to an ICMPv6 request", [][]byte{ping6}, 0, echo(lan4, laptop4, 7, true), false},

		// ICMP errors.
		{"administratively prohibited for a recorded UDP flow", [][]byte{dnsFlow}, 0, icmpError(conn4, laptop4, 3, 13, dnsFlow), true},
		{"administratively prohibited for a recorded echo", [][]byte{ping}, 0, icmpError(conn4, laptop4, 3, 13, ping), true},
		{"time exceeded from a router on the way", [][]byte{sshFlow}, 0, icmpError(router4, laptop4, 11, 0, sshFlow), true},
		{"forged error for an unknown flow", [][]byte{dnsFlow}, 0, icmpError(conn4, laptop4, 3, 13, udp(ap(laptop4, 50000), ap(lan4, 54))), false},
		{"forged error with nothing recorded", nil, 0, icmpError(conn4, laptop4, 3, 3, sshFlow), false},
		{"error quoting a packet to the laptop", [][]byte{dnsFlow}, 0, icmpError(conn4, laptop4, 3, 13, udp(ap(lan4, 53), ap(laptop4, 50000))), false},
		{"error sent elsewhere than the quoted packet's source", [][]byte{dnsFlow}, 0, icmpError(conn4, netip.MustParseAddr("100.96.0.9"), 3, 13, dnsFlow), false},
		{"error quoting an echo reply", [][]byte{ping}, 0, icmpError(conn4, laptop4, 3, 13, echo(laptop4, lan4, 7, true)), false},
		{"redirect for a recorded flow", [][]byte{sshFlow}, 0, icmpError(router4, laptop4, 5, 1, sshFlow), false},
		{"fragmented error", [][]byte{dnsFlow}, 0, fragErr1, false},
		{"ICMPv6 administratively prohibited for a recorded flow", [][]byte{dnsFlow6}, 0, icmpError(lan6, laptop6, 1, 1, dnsFlow6), true},
		{"ICMPv6 packet too big for a recorded flow", [][]byte{sshFlow6}, 0, icmpError(lan6, laptop6, 2, 0, sshFlow6), true},
		{"forged ICMPv6 error", [][]byte{dnsFlow6}, 0, icmpError(lan6, laptop6, 1, 1, udp(ap(laptop6, 50001), ap(lan6, 53))), false},

		// Idle timeouts.
		{"TCP reply after 1 h idle", [][]byte{sshFlow}, time.Hour, tcp(ap(lan4, 22), ap(laptop4, 40000), ack), true},
		{"TCP reply after 2 h idle", [][]byte{sshFlow}, tcpTimeout + time.Second, tcp(ap(lan4, 22), ap(laptop4, 40000), ack), false},
		{"TCP reply 2 min after a FIN", [][]byte{sshFlow, tcp(ap(laptop4, 40000), ap(lan4, 22), fin|ack)}, tcpClosingTimeout + time.Second, tcp(ap(lan4, 22), ap(laptop4, 40000), ack), false},
		{"UDP reply after 119 s", [][]byte{dnsFlow}, udpTimeout - time.Second, udp(ap(lan4, 53), ap(laptop4, 50000)), true},
		{"UDP reply after 2 min", [][]byte{dnsFlow}, udpTimeout + time.Second, udp(ap(lan4, 53), ap(laptop4, 50000)), false},
		{"echo reply after 29 s", [][]byte{ping}, icmpTimeout - time.Second, echo(lan4, laptop4, 7, true), true},
		{"echo reply after 31 s", [][]byte{ping}, icmpTimeout + time.Second, echo(lan4, laptop4, 7, true), false},
		{"error for an expired flow", [][]byte{dnsFlow}, udpTimeout + time.Second, icmpError(conn4, laptop4, 3, 13, dnsFlow), false},

		// Garbage.
		{"empty", nil, 0, []byte{}, false},
		{"IP version 5", nil, 0, append([]byte{0x50}, make([]byte, 39)...), false},
		{"truncated TCP", [][]byte{sshFlow}, 0, tcp(ap(lan4, 22), ap(laptop4, 40000), ack)[:30], false},
		{"IPv4 header longer than the packet", [][]byte{sshFlow}, 0, append([]byte{0x4f}, tcp(ap(lan4, 22), ap(laptop4, 40000), ack)[1:]...), false},
		{"lone later fragment", [][]byte{dnsFlow}, 0, bigReply2, false},
		{"first fragment of an unknown flow", [][]byte{dnsFlow}, 0, stranger1, false},
		{"first fragment of a reply", [][]byte{dnsFlow}, 0, bigReply1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			for _, p := range tt.sent {
				h.send(p)
			}
			h.now += tt.wait
			if got := h.recv(tt.in)[0]; got != tt.want {
				t.Errorf("passed = %v, want %v (%s)", got, tt.want, describe(tt.in))
			}
		})
	}

	// Fragments follow the first, each in its own batch, and only theirs.
	t.Run("fragments", func(t *testing.T) {
		h := newHarness(t, Config{})
		h.send(dnsFlow, dnsFlow6, ping)
		for _, c := range []struct {
			pkt  []byte
			want bool
		}{{stranger1, false}, {stranger2, false}, {bigReply1, true}, {bigReply2, true}, {bigReply6a, true}, {bigReply6b, true}, {bigEcho1, true}, {bigEcho2, true}} {
			if got := h.recv(c.pkt)[0]; got != c.want {
				t.Errorf("%s: passed = %v, want %v", describe(c.pkt), got, c.want)
			}
		}
		h.now += fragTimeout + time.Second
		if got := h.recv(bigReply2)[0]; got {
			t.Errorf("a later fragment passed %v after its first", fragTimeout)
		}
	})
}

func TestWriteBatch(t *testing.T) {
	h := newHarness(t, Config{})
	h.send(tcp(ap(laptop4, 40000), ap(lan4, 22), syn), udp(ap(laptop4, 50000), ap(lan4, 53)))
	reply := tcp(ap(lan4, 22), ap(laptop4, 40000), ack)
	probe := tcp(ap(conn4, 1), ap(laptop4, 22), syn)
	dns := udp(ap(lan4, 53), ap(laptop4, 50000))
	got := h.recv(probe, reply, reply, probe, dns, reply)
	want := []bool{false, true, true, false, true, true}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("passed = %v, want %v", got, want)
	}
	if st := h.d.Stats(); st.Dropped != 2 || st.Flows != 2 {
		t.Errorf("stats = %+v, want 2 flows and 2 dropped", st)
	}
	// A batch dropped whole never reaches the device.
	h.tun.mu.Lock()
	h.tun.writeErr = errors.New("must not be called")
	h.tun.mu.Unlock()
	if n, err := h.d.Write([][]byte{append(make([]byte, wgOffset), probe...)}, wgOffset); n != 1 || err != nil {
		t.Errorf("Write of a dropped batch = %d, %v; want 1, nil", n, err)
	}
	// The device's error comes back.
	if _, err := h.d.Write([][]byte{append(make([]byte, wgOffset), reply...)}, wgOffset); err == nil {
		t.Error("Write hid the device's error")
	}
}

func TestTableBounded(t *testing.T) {
	h := newHarness(t, Config{MaxFlows: 64})
	for i := range 1000 {
		h.send(udp(ap(laptop4, uint16(10000+i)), ap(lan4, 53)))
		h.now += time.Millisecond
	}
	if n := h.d.Stats().Flows; n > 64 {
		t.Errorf("%d flows held, want at most 64", n)
	}
	// The newest flow is kept.
	if !h.recv(udp(ap(lan4, 53), ap(laptop4, 10999)))[0] {
		t.Error("the newest flow was evicted")
	}
}

func TestSweep(t *testing.T) {
	h := newHarness(t, Config{})
	for i := range 100 {
		h.send(udp(ap(laptop4, uint16(10000+i)), ap(lan4, 53)))
	}
	h.send(tcp(ap(laptop4, 40000), ap(lan4, 22), syn))
	if n := h.d.Stats().Flows; n != 101 {
		t.Fatalf("%d flows, want 101", n)
	}
	// Each Read sweeps one shard a second: every shard is swept after
	// numShards seconds of reads, and only the TCP flow is left.
	h.now += udpTimeout + time.Second
	for range numShards {
		h.now += sweepEvery
		h.send(tcp(ap(laptop4, 40000), ap(lan4, 22), ack))
	}
	if n := h.d.Stats().Flows; n != 1 {
		t.Errorf("%d flows after the sweep, want 1", n)
	}
}

// TestConcurrent runs one reader and several writers at once, with
// sweeps and evictions, for the race detector: the answers to a flow the
// laptop keeps using pass throughout, the probes never do.
func TestConcurrent(t *testing.T) {
	tn := &fakeTUN{}
	d := New(tn, Config{MaxFlows: 256})
	var clock atomic.Int64
	d.clock = clock.Load
	keep := tcp(ap(laptop4, 40000), ap(lan4, 22), ack)
	reply := tcp(ap(lan4, 22), ap(laptop4, 40000), ack)
	probe := tcp(ap(conn4, 1), ap(laptop4, 22), syn)
	read := func(pkts ...[]byte) {
		tn.mu.Lock()
		tn.queued = append(tn.queued, pkts...)
		tn.mu.Unlock()
		bufs := make([][]byte, len(pkts))
		for i := range bufs {
			bufs[i] = make([]byte, wgOffset+1500)
		}
		d.Read(bufs, make([]int, len(bufs)), wgOffset)
	}
	read(keep)

	stop := make(chan struct{})
	var reader sync.WaitGroup
	reader.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			clock.Add(int64(100 * time.Millisecond)) // a sweep every 10 reads
			read(keep, udp(ap(laptop4, uint16(10000+i%5000)), ap(lan4, 53)))
		}
	})
	const writers, writes = 3, 1000
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for range writes {
				bufs := [][]byte{
					append(make([]byte, wgOffset), reply...),
					append(make([]byte, wgOffset), probe...),
					append(make([]byte, wgOffset), udp(ap(lan4, 53), ap(laptop4, 10001))...),
				}
				if _, err := d.Write(bufs, wgOffset); err != nil {
					t.Errorf("Write: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	reader.Wait()

	tn.mu.Lock()
	defer tn.mu.Unlock()
	replies := 0
	for _, p := range tn.written {
		switch {
		case bytes.Equal(p, reply):
			replies++
		case bytes.Equal(p, probe):
			t.Fatal("a probe passed")
		}
	}
	if replies != writers*writes {
		t.Errorf("%d replies passed, want %d", replies, writers*writes)
	}
}
