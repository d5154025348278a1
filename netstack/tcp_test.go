package netstack

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
)

func TestTCPEchoToForeignAddress(t *testing.T) {
	for _, tc := range []struct {
		name string
		dst  netip.AddrPort
		src  netip.Addr
	}{
		{"ipv4", netip.MustParseAddrPort("192.0.2.10:80"), clientV4},
		{"ipv6", netip.MustParseAddrPort("[2001:db8::10]:80"), clientV6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			echo := echoServer(t)
			h := &dialHandler{targets: map[netip.AddrPort]string{tc.dst: echo.addr()}, flows: make(chan Flow, 1)}
			p := newPair(t, Config{Handler: h})

			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			c, err := p.dialTCP(ctx, tc.dst)
			if err != nil {
				t.Fatalf("dial %v: %v", tc.dst, err)
			}
			defer c.Close()

			f := recv(t, "the flow", h.flows)
			if f.Dst != tc.dst || f.Src.Addr() != tc.src || f.Proto != ProtoTCP {
				t.Errorf("flow = %v, want tcp %v:* -> %v", f, tc.src, tc.dst)
			}
			// The client's end of the conn must see the foreign address:
			// replies carry it as their source.
			if got := c.RemoteAddr().String(); got != tc.dst.String() {
				t.Errorf("client sees remote %s, want %s", got, tc.dst)
			}
			msg := []byte("hello through the tunnel")
			if _, err := c.Write(msg); err != nil {
				t.Fatalf("write: %v", err)
			}
			got := make([]byte, len(msg))
			c.SetReadDeadline(time.Now().Add(testTimeout))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatalf("read: %v", err)
			}
			if !bytes.Equal(got, msg) {
				t.Errorf("echo = %q, want %q", got, msg)
			}
		})
	}
}

func TestTCPRefusedDialResetsClient(t *testing.T) {
	checkLeaks(t)
	// A loopback port nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	dst := netip.MustParseAddrPort("192.0.2.11:22")
	h := &dialHandler{targets: map[netip.AddrPort]string{dst: closed}}
	p := newPair(t, Config{Handler: h})

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	start := time.Now()
	c, err := p.dialTCP(ctx, dst)
	if err == nil {
		c.Close()
		t.Fatal("dial succeeded, want connection refused")
	}
	if !strings.Contains(err.Error(), "refused") {
		t.Errorf("dial error = %v, want connection refused", err)
	}
	// The RST comes as soon as the handler returns: well under the
	// client's first SYN retransmission (1 s).
	if d := time.Since(start); d > 900*time.Millisecond {
		t.Errorf("refusal took %v, want < 900ms", d)
	}
}

func TestTCPHangingDialDoesNotBlockOtherFlows(t *testing.T) {
	checkLeaks(t)
	echo := echoServer(t)
	good := netip.MustParseAddrPort("192.0.2.10:80")
	hanging := netip.MustParseAddrPort("192.0.2.99:80")
	const dialTimeout = 300 * time.Millisecond

	entered := make(chan struct{})
	dh := &dialHandler{targets: map[netip.AddrPort]string{good: echo.addr()}}
	h := &funcs{tcp: func(ctx context.Context, f Flow, accept func() (net.Conn, error)) {
		if f.Dst != hanging {
			dh.HandleTCP(ctx, f, accept)
			return
		}
		// A dial to a black hole, bounded by the handler's timeout.
		close(entered)
		dctx, cancel := context.WithTimeout(ctx, dialTimeout)
		defer cancel()
		<-dctx.Done()
	}}
	p := newPair(t, Config{Handler: h})

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	hangErr := make(chan error, 1)
	start := time.Now()
	go func() {
		c, err := p.dialTCP(ctx, hanging)
		if err == nil {
			c.Close()
		}
		hangErr <- err
	}()
	recv(t, "the hanging handler", entered)

	// Meanwhile another flow connects and echoes.
	c, err := p.dialTCP(ctx, good)
	if err != nil {
		t.Fatalf("dial %v while another dial hangs: %v", good, err)
	}
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	c.SetReadDeadline(time.Now().Add(testTimeout))
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("echo while another dial hangs: %v", err)
	}
	c.Close()

	err = recv(t, "the hanging dial to fail", hangErr)
	d := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("hanging dial error = %v, want connection refused", err)
	}
	if d < dialTimeout || d > dialTimeout+time.Second {
		t.Errorf("hanging dial failed after %v, want about %v", d, dialTimeout)
	}
}

func TestTCPHalfClose(t *testing.T) {
	dst := netip.MustParseAddrPort("192.0.2.12:80")

	t.Run("client closes first", func(t *testing.T) {
		checkLeaks(t)
		// The server reads the request to EOF, then answers and closes.
		gotReq := make(chan []byte, 1)
		srv := newServer(t, func(c *net.TCPConn) {
			req, _ := io.ReadAll(c)
			gotReq <- req
			c.Write([]byte("response after your eof"))
		})
		c, _, results := dialProxied(t, dst, srv.addr())
		if _, err := c.Write([]byte("request")); err != nil {
			t.Fatal(err)
		}
		if err := c.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		if got := recv(t, "the request at the server", gotReq); string(got) != "request" {
			t.Errorf("server got %q, want %q", got, "request")
		}
		if got := readAll(t, c); string(got) != "response after your eof" {
			t.Errorf("client got %q", got)
		}
		wantProxied(t, results, Counts{AToB: 7, BToA: 23})
	})

	t.Run("server closes first", func(t *testing.T) {
		checkLeaks(t)
		// The server sends a banner and half-closes, then still reads.
		gotBye := make(chan []byte, 1)
		srv := newServer(t, func(c *net.TCPConn) {
			c.Write([]byte("banner"))
			c.CloseWrite()
			b, _ := io.ReadAll(c)
			gotBye <- b
		})
		c, _, results := dialProxied(t, dst, srv.addr())
		if got := readAll(t, c); string(got) != "banner" {
			t.Errorf("client got %q, want banner then EOF", got)
		}
		// Our direction is still open after the server's EOF.
		if _, err := c.Write([]byte("bye")); err != nil {
			t.Fatalf("write after the server's half-close: %v", err)
		}
		c.Close()
		if got := recv(t, "the bye at the server", gotBye); string(got) != "bye" {
			t.Errorf("server got %q, want bye", got)
		}
		if res := recv(t, "the proxy to finish", results); res.err != nil {
			t.Errorf("Proxy: %v", res.err)
		}
	})
}

func TestTCPLargeTransfer(t *testing.T) {
	checkLeaks(t)
	const size = 8 << 20
	echo := echoServer(t)
	dst := netip.MustParseAddrPort("192.0.2.13:5201")
	c, p, results := dialProxied(t, dst, echo.addr())
	data := make([]byte, size)
	rand.Read(data)
	want := sha256.Sum256(data)

	writeErr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.CloseWrite()
		}
		writeErr <- err
	}()
	hash := sha256.New()
	c.SetReadDeadline(time.Now().Add(4 * testTimeout))
	n, err := io.Copy(hash, c)
	if err != nil {
		t.Fatalf("reading the echo after %d bytes: %v", n, err)
	}
	if err := recv(t, "the writer", writeErr); err != nil {
		t.Fatalf("write: %v", err)
	}
	if n != size {
		t.Fatalf("echoed %d bytes, want %d", n, size)
	}
	if got := [32]byte(hash.Sum(nil)); got != want {
		t.Errorf("echo checksum differs")
	}
	wantProxied(t, results, Counts{AToB: size, BToA: size})
	// gVisor sent the echo as offload packets that Read segmented; the
	// client stack verified every segment's checksums.
	if st := p.stack.Stats(); st.Segmented == 0 {
		t.Errorf("no offload packets were segmented: %+v", st)
	}
	// Nothing the client sent was lost inside the Stack.
	if st := p.stack.Stats(); st.GVisorDropped != 0 {
		t.Errorf("gvisor dropped %d packets: %+v", st.GVisorDropped, st)
	}
}

// TestTCPAdvertisedMSS checks the MSS gVisor puts in its SYN-ACK: the
// tunnel MTU minus the IP and TCP headers, so the client never sends a
// segment the tunnel cannot carry.
func TestTCPAdvertisedMSS(t *testing.T) {
	for _, tc := range []struct {
		mtu  int
		dst  netip.AddrPort
		want int
	}{
		{1280, netip.MustParseAddrPort("192.0.2.14:80"), 1240},
		{1280, netip.MustParseAddrPort("[2001:db8::14]:80"), 1220},
		{1420, netip.MustParseAddrPort("192.0.2.14:80"), 1380},
		{1420, netip.MustParseAddrPort("[2001:db8::14]:80"), 1360},
	} {
		t.Run(tc.dst.Addr().String()+"/"+strconv.Itoa(tc.mtu), func(t *testing.T) {
			checkLeaks(t)
			echo := echoServer(t)
			p := newPair(t, Config{MTU: tc.mtu, Handler: &dialHandler{targets: map[netip.AddrPort]string{tc.dst: echo.addr()}}})
			mss := make(chan int, 1)
			p.watch(func(pkt []byte) {
				if m, ok := synAckMSS(pkt); ok {
					select {
					case mss <- m:
					default:
					}
				}
			})
			c, err := p.dialTCP(context.Background(), tc.dst)
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
			got := recv(t, "the syn-ack", mss)
			if got != tc.want {
				t.Errorf("advertised MSS = %d, want %d (MTU %d)", got, tc.want, tc.mtu)
			}
			overhead := 40
			if tc.dst.Addr().Is6() {
				overhead = 60
			}
			if got > tc.mtu-overhead {
				t.Errorf("advertised MSS %d exceeds MTU-%d", got, overhead)
			}
		})
	}
}

// synAckMSS returns the MSS option of a SYN-ACK packet.
func synAckMSS(pkt []byte) (int, bool) {
	var tcpHdr header.TCP
	switch pkt[0] >> 4 {
	case 4:
		ip := header.IPv4(pkt)
		if ip.TransportProtocol() != header.TCPProtocolNumber {
			return 0, false
		}
		tcpHdr = header.TCP(ip.Payload())
	case 6:
		ip := header.IPv6(pkt)
		if ip.TransportProtocol() != header.TCPProtocolNumber {
			return 0, false
		}
		tcpHdr = header.TCP(ip.Payload())
	default:
		return 0, false
	}
	if !tcpHdr.Flags().Contains(header.TCPFlagSyn | header.TCPFlagAck) {
		return 0, false
	}
	opts := header.ParseSynOptions(tcpHdr.Options(), true)
	return int(opts.MSS), true
}

// TestTCPSYNFloodIsBounded writes SYNs straight into the Stack from two
// sources to a handler that never accepts: the handshakes in progress
// stop at the bounds and the rest are dropped; Close then ends it all.
func TestTCPSYNFloodIsBounded(t *testing.T) {
	checkLeaks(t)
	const (
		bound     = 16
		perSource = 10
		perSrcN   = 100
	)
	var (
		mu             sync.Mutex
		running, worst int
	)
	h := &funcs{tcp: func(ctx context.Context, f Flow, accept func() (net.Conn, error)) {
		mu.Lock()
		running++
		worst = max(worst, running)
		mu.Unlock()
		<-ctx.Done() // a dial that never finishes
		mu.Lock()
		running--
		mu.Unlock()
	}}
	s, err := New(Config{Handler: h, Addresses: []netip.Addr{nodeV4}, MaxInFlightTCP: bound, MaxInFlightTCPPerSource: perSource, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	dst := netip.MustParseAddrPort("192.0.2.80:80")
	for _, src := range []netip.Addr{clientV4, netip.MustParseAddr("100.96.0.3")} {
		var bufs [][]byte
		for port := range perSrcN {
			bufs = append(bufs, synPacket(netip.AddrPortFrom(src, uint16(40000+port)), dst))
		}
		if n, err := s.Write(bufs, 0); err != nil || n != len(bufs) {
			t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(bufs))
		}
	}
	// Retransmissions of admitted SYNs are not new handshakes.
	if _, err := s.Write([][]byte{synPacket(netip.AddrPortFrom(clientV4, 40000), dst)}, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the handlers to start", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return running == bound
	})
	st := s.Stats()
	if st.TCPInFlight != bound || st.TCPInFlightPeak != bound {
		t.Errorf("in flight = %d (peak %d), want %d", st.TCPInFlight, st.TCPInFlightPeak, bound)
	}
	if want := uint64(2*perSrcN - bound); st.TCPDropped != want {
		t.Errorf("dropped = %d, want %d", st.TCPDropped, want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if running != 0 || worst != bound {
		t.Errorf("after Close: %d handlers running (worst %d), want 0 (worst %d)", running, worst, bound)
	}
	if st := s.Stats(); st.TCPInFlight != 0 || st.TCPActive != 0 {
		t.Errorf("after Close: %+v", st)
	}
}

// synPacket builds an IPv4 TCP SYN with valid checksums.
func synPacket(src, dst netip.AddrPort) []byte {
	const tcpLen = header.TCPMinimumSize + 4 // with an MSS option
	b := make([]byte, header.IPv4MinimumSize+tcpLen)
	ip := header.IPv4(b)
	ip.Encode(&header.IPv4Fields{
		TotalLength: uint16(len(b)),
		TTL:         64,
		Protocol:    uint8(header.TCPProtocolNumber),
		SrcAddr:     tcpip.AddrFrom4(src.Addr().As4()),
		DstAddr:     tcpip.AddrFrom4(dst.Addr().As4()),
	})
	ip.SetChecksum(^ip.CalculateChecksum())
	th := header.TCP(b[header.IPv4MinimumSize:])
	th.Encode(&header.TCPFields{
		SrcPort:    src.Port(),
		DstPort:    dst.Port(),
		SeqNum:     binary.BigEndian.Uint32([]byte{1, 2, 3, byte(src.Port())}),
		DataOffset: tcpLen,
		Flags:      header.TCPFlagSyn,
		WindowSize: 65535,
	})
	header.EncodeMSSOption(1240, th[header.TCPMinimumSize:])
	xsum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, ip.SourceAddress(), ip.DestinationAddress(), tcpLen)
	th.SetChecksum(^checksum.Checksum(th, xsum))
	return b
}

func TestTCPAcceptTwiceAndAfterReturn(t *testing.T) {
	checkLeaks(t)
	dst := netip.MustParseAddrPort("192.0.2.15:80")
	type res struct {
		first, second error
	}
	results := make(chan res, 1)
	h := &funcs{tcp: func(ctx context.Context, f Flow, accept func() (net.Conn, error)) {
		c, err1 := accept()
		_, err2 := accept()
		if c != nil {
			c.Write([]byte("hi"))
		}
		results <- res{err1, err2}
	}}
	p := newPair(t, Config{Handler: h})
	c, err := p.dialTCP(context.Background(), dst)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := recv(t, "the handler", results)
	if r.first != nil {
		t.Errorf("first accept: %v", r.first)
	}
	if !errors.Is(r.second, errAccepted) {
		t.Errorf("second accept = %v, want errAccepted", r.second)
	}
	// The handler returned, so the stack closed the tunnel conn.
	if got := readAll(t, c); string(got) != "hi" {
		t.Errorf("client read %q, want hi then EOF", got)
	}
}

// TestCloseAbortsHandshakes closes the Stack while a handler waits in
// accept for a client that never completes the handshake.
func TestCloseAbortsHandshakes(t *testing.T) {
	checkLeaks(t)
	inAccept := make(chan struct{})
	acceptErr := make(chan error, 1)
	h := &funcs{tcp: func(ctx context.Context, f Flow, accept func() (net.Conn, error)) {
		close(inAccept)
		c, err := accept()
		if c != nil {
			c.Close()
		}
		acceptErr <- err
	}}
	s, err := New(Config{Handler: h, Addresses: []netip.Addr{nodeV4}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	// A SYN from a client that will never answer our SYN-ACK.
	if _, err := s.Write([][]byte{synPacket(netip.AddrPortFrom(clientV4, 40000), netip.MustParseAddrPort("192.0.2.81:80"))}, 0); err != nil {
		t.Fatal(err)
	}
	recv(t, "the handler to call accept", inAccept)
	waitFor(t, "the SYN-ACK", func() bool { return len(s.link.queue) > 0 })

	start := time.Now()
	s.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v with a handshake in progress", d)
	}
	if err := recv(t, "accept to fail", acceptErr); err == nil {
		t.Error("accept succeeded, want an error")
	}
}

// TestTCPOptions checks that the stack runs with the TCP options Warren
// relies on (see setTCPOptions), not gVisor's defaults.
func TestTCPOptions(t *testing.T) {
	checkLeaks(t)
	p := newPair(t, Config{Handler: &dialHandler{}})
	st := p.stack.ipstack
	var sack tcpip.TCPSACKEnabled
	var recovery tcpip.TCPRecovery
	var minRTO tcpip.TCPMinRTOOption
	var cc tcpip.CongestionControlOption
	var moderate tcpip.TCPModerateReceiveBufferOption
	var rcv tcpip.TCPReceiveBufferSizeRangeOption
	for _, o := range []tcpip.GettableTransportProtocolOption{&sack, &recovery, &minRTO, &cc, &moderate, &rcv} {
		if err := st.TransportProtocolOption(tcp.ProtocolNumber, o); err != nil {
			t.Fatalf("reading %T: %v", o, err)
		}
	}
	if !bool(sack) || recovery != 0 || minRTO != tcpip.TCPMinRTOOption(50*time.Millisecond) || cc != "reno" || !bool(moderate) || rcv.Max != tcpRcvBufMax {
		t.Errorf("sack %v, recovery %v, min rto %v, cc %q, moderate %v, receive buffer max %d; want true, 0 (SACK only), 50ms, reno, true, %d",
			sack, recovery, time.Duration(minRTO), cc, moderate, rcv.Max, tcpRcvBufMax)
	}
}
