package netstack

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// newLocal builds a local Stack owning addrs, closed at cleanup.
func newLocal(t *testing.T, addrs ...netip.Addr) *Stack {
	t.Helper()
	s, err := NewLocal(LocalConfig{Addresses: addrs, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("NewLocal: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// joinStacks moves packets both ways between a laptop's local Stack and
// a connector's Stack, as two wireguard-go devices would, until cleanup.
func joinStacks(t *testing.T, laptop, connector *Stack) {
	t.Helper()
	var wg sync.WaitGroup
	pump := func(from, to *Stack) {
		defer wg.Done()
		mtu, _ := from.MTU()
		bufs := make([][]byte, batchSize)
		for i := range bufs {
			bufs[i] = make([]byte, wgOffset+mtu)
		}
		sizes := make([]int, batchSize)
		for {
			n, err := from.Read(bufs, sizes, wgOffset)
			if err != nil {
				return
			}
			out := make([][]byte, n)
			for i := range n {
				out[i] = bufs[i][:wgOffset+sizes[i]]
			}
			if _, err := to.Write(out, wgOffset); err != nil {
				return
			}
		}
	}
	wg.Add(2)
	go pump(laptop, connector)
	go pump(connector, laptop)
	t.Cleanup(func() {
		laptop.Close()
		connector.Close()
		wg.Wait()
	})
}

// TestLocalDial dials through a connector's Stack from a laptop's local
// Stack: TCP with half-close both ways, a refused TCP flow, UDP.
func TestLocalDial(t *testing.T) {
	checkLeaks(t)
	echo := echoServer(t)
	udpEcho := udpEchoServer(t)
	tcpDst := netip.MustParseAddrPort("192.0.2.10:80")
	tcpDst6 := netip.MustParseAddrPort("[2001:db8::10]:80")
	udpDst := netip.MustParseAddrPort("192.0.2.10:53")
	h := &dialHandler{targets: map[netip.AddrPort]string{tcpDst: echo.addr(), tcpDst6: echo.addr()}, flows: make(chan Flow, 4)}
	started, ended := make(chan Flow, 1), make(chan Flow, 1)
	udpHandler := &funcs{
		tcp: h.HandleTCP,
		udp: udpRelay(udpEcho, started, ended),
	}
	connector := newStack(t, Config{Handler: udpHandler})
	laptop := newLocal(t, clientV4, clientV6)
	joinStacks(t, laptop, connector)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	for _, dst := range []netip.AddrPort{tcpDst, tcpDst6} {
		c, err := laptop.DialTCP(ctx, dst)
		if err != nil {
			t.Fatalf("DialTCP %v: %v", dst, err)
		}
		f := recv(t, "the connector's flow", h.flows)
		wantSrc := clientV4
		if dst.Addr().Is6() {
			wantSrc = clientV6
		}
		if f.Src.Addr() != wantSrc || f.Dst != dst {
			t.Errorf("connector saw %v, want %v -> %v", f, wantSrc, dst)
		}
		msg := strings.Repeat("from the laptop ", 10000)
		go func() {
			c.Write([]byte(msg))
			c.(interface{ CloseWrite() error }).CloseWrite()
		}()
		if got := readAll(t, c); string(got) != msg {
			t.Errorf("echo through %v: got %d bytes, want %d", dst, len(got), len(msg))
		}
		c.Close()
	}

	// A destination the connector refuses: RST, ECONNREFUSED.
	refused := netip.MustParseAddrPort("192.0.2.11:80")
	if c, err := laptop.DialTCP(ctx, refused); !errors.Is(err, syscall.ECONNREFUSED) {
		if c != nil {
			c.Close()
		}
		t.Errorf("DialTCP %v = %v, want ECONNREFUSED", refused, err)
	}
	recv(t, "the refused flow", h.flows)

	u, err := laptop.DialUDP(udpDst)
	if err != nil {
		t.Fatalf("DialUDP: %v", err)
	}
	if _, err := u.Write([]byte("a question")); err != nil {
		t.Fatal(err)
	}
	f := recv(t, "the udp flow", started)
	if f.Src.Addr() != clientV4 || f.Dst != udpDst {
		t.Errorf("udp flow %v, want from %v to %v", f, clientV4, udpDst)
	}
	u.SetReadDeadline(time.Now().Add(testTimeout))
	buf := make([]byte, 100)
	n, err := u.Read(buf)
	if err != nil || string(buf[:n]) != "a question" {
		t.Errorf("udp answer %q, %v", buf[:n], err)
	}
	u.Close()
	connector.Close()
	recv(t, "the udp flow's end", ended)
}

// TestLocalAddresses: a local Stack dials only from addresses it owns,
// which SetAddresses changes; a terminating Stack neither dials nor
// changes its addresses.
func TestLocalAddresses(t *testing.T) {
	checkLeaks(t)
	s := newLocal(t)
	ctx := context.Background()
	dst := netip.MustParseAddrPort("192.0.2.10:80")
	if _, err := s.DialTCP(ctx, dst); !errors.Is(err, ErrNoAddress) {
		t.Errorf("DialTCP without addresses = %v, want ErrNoAddress", err)
	}
	if _, err := s.DialUDP(dst); !errors.Is(err, ErrNoAddress) {
		t.Errorf("DialUDP without addresses = %v, want ErrNoAddress", err)
	}
	if err := s.SetAddresses([]netip.Addr{clientV4, clientV4}); err != nil {
		t.Fatal(err)
	}
	u, err := s.DialUDP(dst)
	if err != nil {
		t.Fatalf("DialUDP with an address: %v", err)
	}
	if got := u.LocalAddr().(*net.UDPAddr).AddrPort().Addr(); got != clientV4 {
		t.Errorf("udp from %v, want %v", got, clientV4)
	}
	u.Close()
	if _, err := s.DialUDP(netip.MustParseAddrPort("[2001:db8::1]:53")); !errors.Is(err, ErrNoAddress) {
		t.Errorf("DialUDP to ipv6 with only ipv4 = %v, want ErrNoAddress", err)
	}
	if err := s.SetAddresses([]netip.Addr{clientV6}); err != nil {
		t.Fatal(err)
	}
	if got := s.Addresses(); len(got) != 1 || got[0] != clientV6 {
		t.Errorf("Addresses = %v, want [%v]", got, clientV6)
	}
	if _, err := s.DialUDP(dst); !errors.Is(err, ErrNoAddress) {
		t.Errorf("DialUDP after the ipv4 address went = %v, want ErrNoAddress", err)
	}
	for _, bad := range []netip.Addr{{}, netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("::ffff:1.2.3.4"), netip.MustParseAddr("ff02::1")} {
		if err := s.SetAddresses([]netip.Addr{bad}); err == nil {
			t.Errorf("SetAddresses(%v) accepted", bad)
		}
	}
	s.Close()
	if _, err := s.DialUDP(netip.MustParseAddrPort("[2001:db8::1]:53")); !errors.Is(err, ErrClosed) {
		t.Errorf("DialUDP after Close = %v, want ErrClosed", err)
	}

	term := newStack(t, Config{Handler: &funcs{}})
	if err := term.SetAddresses(nil); err == nil {
		t.Error("a terminating stack's SetAddresses succeeded")
	}
	if _, err := term.DialTCP(ctx, dst); err == nil {
		t.Error("a terminating stack dialled")
	}
}

// TestLocalRefusesInbound: from the tunnel, a local Stack answers nothing
// but its own sockets' flows. Each packet is followed by a SYN to a
// closed port of ours (the marker), whose RST is the first thing out
// when the packet got no answer.
func TestLocalRefusesInbound(t *testing.T) {
	checkLeaks(t)
	s := newLocal(t, clientV4)
	out := make(chan []byte, 16)
	go func() {
		bufs := [][]byte{make([]byte, wgOffset+DefaultMTU)}
		sizes := make([]int, 1)
		for {
			n, err := s.Read(bufs, sizes, wgOffset)
			if err != nil {
				close(out)
				return
			}
			if n == 1 {
				out <- append([]byte(nil), bufs[0][wgOffset:wgOffset+sizes[0]]...)
			}
		}
	}()
	defer func() {
		s.Close()
		for range out {
		}
	}()
	peer := netip.MustParseAddrPort("100.96.0.1:40000")
	marker := netip.AddrPortFrom(clientV4, 9)
	isRST := func(p []byte, to netip.AddrPort) bool {
		ip := header.IPv4(p)
		if ip.TransportProtocol() != header.TCPProtocolNumber {
			return false
		}
		th := header.TCP(ip.Payload())
		return th.Flags().Contains(header.TCPFlagRst) && th.SourcePort() == to.Port()
	}
	write := func(p []byte) {
		t.Helper()
		b := append(make([]byte, wgOffset), p...)
		if _, err := s.Write([][]byte{b}, wgOffset); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name   string
		pkt    []byte
		answer func(p []byte) bool // nil: no answer
	}{
		{
			name:   "syn to our address, no socket: rst",
			pkt:    synPacket(peer, netip.AddrPortFrom(clientV4, 22)),
			answer: func(p []byte) bool { return isRST(p, netip.AddrPortFrom(clientV4, 22)) },
		},
		{
			name: "udp to our address, no socket: port unreachable",
			pkt:  rawUDP(peer, netip.AddrPortFrom(clientV4, 53), 8),
			answer: func(p []byte) bool {
				ip := header.IPv4(p)
				if ip.TransportProtocol() != header.ICMPv4ProtocolNumber {
					return false
				}
				icmp := header.ICMPv4(ip.Payload())
				return icmp.Type() == header.ICMPv4DstUnreachable && icmp.Code() == header.ICMPv4PortUnreachable
			},
		},
		{name: "syn to a foreign address: dropped", pkt: synPacket(peer, netip.MustParseAddrPort("192.0.2.10:22"))},
		{name: "udp to a foreign address: dropped", pkt: rawUDP(peer, netip.MustParseAddrPort("192.0.2.10:53"), 8)},
		{name: "ping to our address: dropped", pkt: echoPacket(peer.Addr(), clientV4, false, 1, 1, []byte("hi"))},
		{name: "ping to a foreign address: dropped", pkt: echoPacket(peer.Addr(), netip.MustParseAddr("192.0.2.10"), false, 1, 1, []byte("hi"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			write(tc.pkt)
			write(synPacket(peer, marker))
			first := recv(t, "an answer", out)
			if tc.answer != nil {
				if !tc.answer(first) {
					t.Fatalf("first packet out is not the answer: % x", first)
				}
				first = recv(t, "the marker's rst", out)
			}
			if !isRST(first, marker) {
				t.Fatalf("got % x before the marker's rst: the packet was answered", first)
			}
		})
	}
}

// TestLocalDialCancel: a dial nobody answers ends with its context.
func TestLocalDialCancel(t *testing.T) {
	checkLeaks(t)
	s := newLocal(t, clientV4)
	// Nothing reads the Stack: the SYN goes nowhere.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := s.DialTCP(ctx, netip.MustParseAddrPort("192.0.2.10:80"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("DialTCP = %v, want the deadline", err)
	}
}
