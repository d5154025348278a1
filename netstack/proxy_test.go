package netstack

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := recv(t, "accept", accepted)
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() {
		c.Close()
		s.Close()
	})
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

type proxyOut struct {
	counts Counts
	err    error
}

func startProxy(ctx context.Context, a, b net.Conn) <-chan proxyOut {
	out := make(chan proxyOut, 1)
	go func() {
		c, err := ProxyCount(ctx, a, b)
		out <- proxyOut{c, err}
	}()
	return out
}

// In these tests client—a proxies a↔b to b—server.

func TestProxyHalfClose(t *testing.T) {
	checkLeaks(t)
	client, a := tcpPair(t)
	b, server := tcpPair(t)
	out := startProxy(context.Background(), a, b)

	client.Write([]byte("request"))
	client.CloseWrite()
	if got := readAll(t, server); string(got) != "request" {
		t.Errorf("server got %q", got)
	}
	// The client's EOF did not stop the other direction.
	server.Write([]byte("a longer response"))
	server.CloseWrite()
	if got := readAll(t, client); string(got) != "a longer response" {
		t.Errorf("client got %q", got)
	}
	res := recv(t, "Proxy", out)
	if res.err != nil {
		t.Errorf("Proxy: %v", res.err)
	}
	if want := (Counts{AToB: 7, BToA: 17}); res.counts != want {
		t.Errorf("counts = %+v, want %+v", res.counts, want)
	}
}

func TestProxyContextEnds(t *testing.T) {
	checkLeaks(t)
	client, a := tcpPair(t)
	b, server := tcpPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	out := startProxy(ctx, a, b)
	client.Write([]byte("x"))
	if _, err := io.ReadFull(server, make([]byte, 1)); err != nil {
		t.Fatalf("server read: %v", err)
	}
	cancel()
	if res := recv(t, "Proxy", out); !errors.Is(res.err, context.Canceled) {
		t.Errorf("Proxy = %v, want context.Canceled", res.err)
	}
	// Both conns were reset: neither end takes the cut for an end.
	for name, c := range map[string]*net.TCPConn{"client": client, "server": server} {
		c.SetReadDeadline(time.Now().Add(testTimeout))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("%s read after the proxy's context ended = %v, want a reset", name, err)
		}
	}
}

func TestProxyPassesResets(t *testing.T) {
	for _, who := range []string{"server", "client"} {
		t.Run("from the "+who, func(t *testing.T) {
			checkLeaks(t)
			client, a := tcpPair(t)
			b, server := tcpPair(t)
			out := startProxy(context.Background(), a, b)
			resetter, other := server, client
			if who == "client" {
				resetter, other = client, server
			}
			resetter.SetLinger(0)
			resetter.Close() // a RST toward the proxy
			if res := recv(t, "Proxy", out); res.err == nil {
				t.Error("Proxy = nil, want the reset")
			}
			other.SetReadDeadline(time.Now().Add(testTimeout))
			if _, err := other.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("read at the other end after the reset = %v, want a reset", err)
			}
		})
	}
}

func TestProxyWithoutCloseWrite(t *testing.T) {
	checkLeaks(t)
	client, a := net.Pipe()
	b, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	out := startProxy(context.Background(), a, b)
	go func() {
		client.Write([]byte("hi"))
		client.Close()
	}()
	// b has no CloseWrite: the client's EOF closes it whole.
	if got := readAll(t, server); string(got) != "hi" {
		t.Errorf("server got %q", got)
	}
	res := recv(t, "Proxy", out)
	if res.err != nil {
		t.Errorf("Proxy: %v", res.err)
	}
	if res.counts.AToB != 2 {
		t.Errorf("counts = %+v, want AToB 2", res.counts)
	}
}

// readSizes is a conn that records the size of the buffer each Read gets.
type readSizes struct {
	net.Conn
	sizes chan int
}

func (c *readSizes) Read(b []byte) (int, error) {
	c.sizes <- len(b)
	return c.Conn.Read(b)
}

// TestProxyIdleFlowHoldsASmallBuffer checks which buffer a direction
// waits with: a small one at first and after a small message, a large one
// after a bulk read, so that idle flows do not pin 64 KiB each.
func TestProxyIdleFlowHoldsASmallBuffer(t *testing.T) {
	a1, a2 := tcpPair(t)
	b1, b2 := tcpPair(t)
	src := &readSizes{Conn: a2, sizes: make(chan int, 16)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		ProxyCount(ctx, src, b1)
	}()
	defer func() {
		cancel()
		<-done
		a1.Close()
		b2.Close()
	}()
	// waiting is the buffer size of the Read the direction now waits in:
	// the last one recorded, once the proxy is blocked again.
	waiting := func(what string) int {
		t.Helper()
		var n int
		select {
		case n = <-src.sizes:
		case <-time.After(5 * time.Second):
			t.Fatalf("no read %s", what)
		}
		for {
			select {
			case n = <-src.sizes:
			case <-time.After(100 * time.Millisecond):
				return n
			}
		}
	}
	got := make([]byte, proxyBufSize)
	send := func(n int) {
		t.Helper()
		if _, err := a1.Write(make([]byte, n)); err != nil {
			t.Fatal(err)
		}
		b2.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(b2, got[:n]); err != nil {
			t.Fatal(err)
		}
	}
	if n := waiting("at first"); n != proxySmallBufSize {
		t.Errorf("an idle direction waits with %d bytes, want %d", n, proxySmallBufSize)
	}
	send(4 * proxySmallBufSize) // more than a small message: bulk
	if n := waiting("after a bulk read"); n != proxyBufSize {
		t.Errorf("after a bulk read the next read gets %d bytes, want %d", n, proxyBufSize)
	}
	send(100) // a small message: idle again
	if n := waiting("after a small message"); n != proxySmallBufSize {
		t.Errorf("after a small message the next read gets %d bytes, want %d", n, proxySmallBufSize)
	}
}

// TestProxyMeter checks that a Meter shows the bytes moved while the run
// goes on, on a Stack's flow (drain and the socket copy) and between two
// sockets (pipe).
func TestProxyMeter(t *testing.T) {
	checkLeaks(t)
	echo := echoServer(t)
	dst := netip.MustParseAddrPort("192.0.2.10:80")
	meters := make(chan *Meter, 1)
	h := &funcs{tcp: func(ctx context.Context, f Flow, accept func() (net.Conn, error)) {
		lan, err := net.Dial("tcp", echo.addr())
		if err != nil {
			return
		}
		tunnel, err := accept()
		if err != nil {
			lan.Close()
			return
		}
		m := new(Meter)
		meters <- m
		ProxyMeter(ctx, tunnel, lan, m)
	}}
	p := newPair(t, Config{Handler: h})
	c, err := p.dialTCP(context.Background(), dst)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m := recv(t, "the flow's meter", meters)
	for i, msg := range []string{"hello", "and more"} {
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, make([]byte, len(msg))); err != nil {
			t.Fatal(err)
		}
		want := int64(len("hello"))
		if i == 1 {
			want += int64(len(msg))
		}
		waitFor(t, "the meter to count", func() bool { return m.Counts() == Counts{AToB: want, BToA: want} })
	}

	client, a := tcpPair(t)
	b, server := tcpPair(t)
	var sm Meter
	done := make(chan error, 1)
	go func() { done <- ProxyMeter(context.Background(), a, b, &sm) }()
	client.Write([]byte("abc"))
	io.ReadFull(server, make([]byte, 3))
	server.Write([]byte("de"))
	io.ReadFull(client, make([]byte, 2))
	waitFor(t, "the socket meter to count", func() bool { return sm.Counts() == Counts{AToB: 3, BToA: 2} })
	client.CloseWrite()
	server.CloseWrite()
	if err := recv(t, "ProxyMeter", done); err != nil {
		t.Errorf("ProxyMeter: %v", err)
	}
}
