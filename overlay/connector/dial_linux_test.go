package connector

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

func TestParsePortRange(t *testing.T) {
	tests := []struct {
		in     string
		lo, hi int
		ok     bool
	}{
		{"32768\t60999\n", 32768, 60999, true},
		{"1024 65535", 1024, 65535, true},
		{"1 2000", 1024, 2000, true}, // an ordinary user binds from 1024
		{"40000 30000", 0, 0, false},
		{"40000", 0, 0, false},
		{"a b", 0, 0, false},
		{"1024 70000", 0, 0, false},
	}
	for _, tt := range tests {
		lo, hi, ok := parsePortRange(tt.in)
		if lo != tt.lo || hi != tt.hi || ok != tt.ok {
			t.Errorf("parsePortRange(%q) = %d, %d, %v; want %d, %d, %v", tt.in, lo, hi, ok, tt.lo, tt.hi, tt.ok)
		}
	}
}

// closeOnEOF is a loopback server that closes each connection once the
// client has closed its side, so the client's socket ends in TIME-WAIT.
func closeOnEOF(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				io.Copy(io.Discard, c)
				c.Close()
			}()
		}
	}()
	return ln.Addr().String()
}

// TestLANDialerTakesOverTimeWait checks why the connector binds its LAN
// side's ports itself: a port whose last connection to a destination is
// in TIME-WAIT on the connector's side can carry a new one to the same
// destination at once, which a plain dial cannot bind.
func TestLANDialerTakesOverTimeWait(t *testing.T) {
	addr := closeOnEOF(t)
	d := newLANDialer(5 * time.Second)
	ctx := context.Background()

	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	port := c.LocalAddr().(*net.TCPAddr).Port
	if port < d.lo || port > d.hi {
		t.Errorf("dialed from port %d, outside the ephemeral range %d-%d", port, d.lo, d.hi)
	}
	// Close first: our FIN, the server's FIN, and TIME-WAIT here.
	c.(*net.TCPConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("waiting for the server's close: %v", err)
	}
	c.Close()

	plain := net.Dialer{LocalAddr: &net.TCPAddr{Port: port}}
	if pc, err := plain.DialContext(ctx, "tcp", addr); err == nil {
		pc.Close()
		t.Logf("a plain dial could bind port %d too (no TIME-WAIT left?)", port)
	} else if !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("plain dial from port %d: %v, want EADDRINUSE", port, err)
	}

	again, err := d.dialFrom(ctx, addr, port)
	if err != nil {
		t.Fatalf("dialing again from port %d, in TIME-WAIT: %v", port, err)
	}
	defer again.Close()
	if got := again.LocalAddr().(*net.TCPAddr).Port; got != port {
		t.Errorf("dialed again from port %d, want %d", got, port)
	}
}

func TestLANDialerUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	c, err := newLANDialer(time.Second).DialContext(context.Background(), "udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, _, err := pc.ReadFrom(make([]byte, 8)); err != nil || n != 1 {
		t.Errorf("udp datagram: %d bytes, %v", n, err)
	}
}
