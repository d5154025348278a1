package netstack

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/waiter"
)

// proxyGoroutines counts the goroutines copying a flow: in a proxyRun's
// pipe or a drain's run.
func proxyGoroutines() int {
	var count int
	for _, g := range goroutineStacks() {
		if strings.Contains(g, "netstack.(*proxyRun)") || strings.Contains(g, "netstack.(*drain)") {
			count++
		}
	}
	return count
}

// roundTrip writes msg on c and reads it back.
func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(testTimeout))
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(got) != msg {
		t.Fatalf("echoed %q, want %q", got, msg)
	}
}

// TestIdleFlowsHoldOneGoroutineEach checks that an idle proxied flow costs
// one goroutine, the one waiting on the LAN socket, and that the direction
// out of gVisor, which has no goroutine while idle, starts again when data
// comes.
func TestIdleFlowsHoldOneGoroutineEach(t *testing.T) {
	checkLeaks(t)
	const flows = 20
	srv := echoServer(t)
	dst := netip.MustParseAddrPort("192.0.2.20:7")
	h := &dialHandler{targets: map[netip.AddrPort]string{dst: srv.addr()}}
	p := newPair(t, Config{Handler: h})

	var conns []net.Conn
	for i := range flows {
		c, err := p.dialTCP(context.Background(), dst)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		conns = append(conns, c)
		roundTrip(t, c, fmt.Sprintf("first message of flow %d", i))
	}
	// The copies go idle once the echoes are read back.
	deadline := time.Now().Add(testTimeout)
	for n := proxyGoroutines(); n != flows; n = proxyGoroutines() {
		if time.Now().After(deadline) {
			t.Fatalf("%d idle flows hold %d copying goroutines, want %d", flows, n, flows)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i, c := range conns {
		roundTrip(t, c, fmt.Sprintf("second message of flow %d, after idling", i))
	}
}

// TestDrainCopiesWhatCameBeforeIt checks that data the client sent before
// the proxy started is copied: it arrived before drain registered for the
// flow's events.
func TestDrainCopiesWhatCameBeforeIt(t *testing.T) {
	checkLeaks(t)
	srv := echoServer(t)
	dst := netip.MustParseAddrPort("192.0.2.21:7")
	results := make(chan proxyResult, 1)
	h := &dialHandler{targets: map[netip.AddrPort]string{dst: srv.addr()}, results: results,
		beforeProxy: func(tunnel net.Conn) {
			// Wait until the client's message is queued in gVisor.
			ep := tunnel.(*tcpConn).ep
			for end := time.Now().Add(testTimeout); ep.Readiness(waiter.ReadableEvents) == 0 && time.Now().Before(end); {
				time.Sleep(time.Millisecond)
			}
		}}
	p := newPair(t, Config{Handler: h})
	c, err := p.dialTCP(context.Background(), dst)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const msg = "sent before the proxy started"
	roundTrip(t, c, msg)
	c.CloseWrite()
	if rest := readAll(t, c); len(rest) != 0 {
		t.Errorf("after the echo the client read %q, want the end of the stream", rest)
	}
	wantProxied(t, results, Counts{AToB: int64(len(msg)), BToA: int64(len(msg))})
}
