package netstack

import (
	"context"
	"errors"
	"io"
	"net"
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
	b, _ := tcpPair(t)
	ctx, cancel := context.WithCancel(context.Background())
	out := startProxy(ctx, a, b)
	cancel()
	res := recv(t, "Proxy", out)
	if !errors.Is(res.err, context.Canceled) {
		t.Errorf("Proxy = %v, want context.Canceled", res.err)
	}
	// Both conns were closed: the client sees EOF.
	client.SetReadDeadline(time.Now().Add(testTimeout))
	if _, err := client.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("client read after abort = %v, want EOF", err)
	}
}

func TestProxyResetAbortsBothWays(t *testing.T) {
	checkLeaks(t)
	client, a := tcpPair(t)
	b, server := tcpPair(t)
	out := startProxy(context.Background(), a, b)
	server.SetLinger(0)
	server.Close() // RST toward b
	res := recv(t, "Proxy", out)
	if res.err == nil {
		t.Error("Proxy = nil, want the reset")
	}
	client.SetReadDeadline(time.Now().Add(testTimeout))
	if _, err := client.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("client read after abort = %v, want EOF", err)
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
