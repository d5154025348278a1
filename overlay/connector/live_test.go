package connector

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"

	"github.com/warrennet/warren/netstack"
	"github.com/warrennet/warren/overlay/wire"
)

// lanHost is a loopback TCP server standing for a LAN host: it echoes
// each connection and reports how each one ended (nil for an EOF).
type lanHost struct {
	ln    net.Listener
	ended chan error
	// onAccept, if set, runs on each connection before the echo.
	onAccept func(c net.Conn, r *bufio.Reader) error
}

func newLANHost(t *testing.T, onAccept func(net.Conn, *bufio.Reader) error) *lanHost {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &lanHost{ln: ln, ended: make(chan error, 16), onAccept: onAccept}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go h.serve(c)
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return h
}

func (h *lanHost) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	if h.onAccept != nil {
		if err := h.onAccept(c, r); err != nil {
			h.ended <- err
			return
		}
	}
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			c.Write(buf[:n])
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			h.ended <- err
			return
		}
	}
}

func (h *lanHost) addr() string { return h.ln.Addr().String() }

// roundTrip writes msg on c and reads the echo.
func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(testTimeout))
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read the echo: %v", err)
	}
	if string(got) != msg {
		t.Fatalf("echo %q, want %q", got, msg)
	}
	c.SetDeadline(time.Time{})
}

// waitReset waits, at most limit, for c to fail as a reset does: an
// error that is not a clean end.
func waitReset(t *testing.T, c net.Conn, limit time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(limit))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	switch {
	case err == nil:
		t.Errorf("read data from a flow that should be cut")
	case errors.Is(err, io.EOF):
		t.Errorf("the flow ended cleanly (FIN), want a reset")
	case errors.As(err, &ne) && ne.Timeout():
		t.Errorf("the flow was not cut within %v", limit)
	}
}

func recv[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(testTimeout):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// liveFor returns the live flow to dst, if any.
func (l *lab) liveFor(dst string) (wire.FlowRecord, bool) {
	for _, r := range l.c.LiveFlows() {
		if r.Dst == netip.MustParseAddrPort(dst) {
			return r, true
		}
	}
	return wire.FlowRecord{}, false
}

func (l *lab) endedFor(dst string) []wire.FlowRecord {
	return l.recs.find(func(r wire.FlowRecord) bool {
		return r.Decision == wire.DecisionAllow && r.Dst == netip.MustParseAddrPort(dst) && !r.End.IsZero()
	})
}

// TestApplyCutsFlows opens flows from real client stacks and checks that
// the live registry shows them with their rule and bytes; that a netmap
// whose policy no longer allows one cuts it at once (a reset to both
// ends for TCP, both sockets closed for UDP) while an allowed flow goes
// on; that removing the client cuts the rest; and that each flow ends in
// a record with its bytes and why it was cut.
func TestApplyCutsFlows(t *testing.T) {
	ssh := newLANHost(t, nil)
	web := newLANHost(t, nil)
	servers := lanServers(t)
	l := newLab(t, map[string]string{
		"tcp 192.0.2.10:22": ssh.addr(),
		"tcp 192.0.2.10:80": web.addr(),
		"udp 192.0.2.53:53": servers["udp 192.0.2.53:53"],
	})
	alice := peer("alice-laptop", "alice@example.com", aliceAddr,
		grant("192.0.2.10/32", "22", wire.ProtoTCP, 1), grant("192.0.2.10/32", "80", wire.ProtoTCP, 2), grant("192.0.2.53/32", "53", wire.ProtoUDP, 3))
	nm := netMap([]string{"192.0.2.0/24"}, true, alice)
	nm.Policy.Rules = []wire.PolicyRule{{Index: 1, Text: "group:eng → 192.0.2.10:22/tcp"}}
	l.apply(nm)

	tnet := l.client(aliceAddr)
	ctx := context.Background()
	sshConn, err := tnet.DialContextTCPAddrPort(ctx, netip.MustParseAddrPort("192.0.2.10:22"))
	if err != nil {
		t.Fatal(err)
	}
	defer sshConn.Close()
	roundTrip(t, sshConn, "SSH-2.0-test")
	webConn, err := tnet.DialContextTCPAddrPort(ctx, netip.MustParseAddrPort("192.0.2.10:80"))
	if err != nil {
		t.Fatal(err)
	}
	defer webConn.Close()
	roundTrip(t, webConn, "GET / HTTP/1.0\r\n\r\n")
	dns, err := tnet.DialUDPAddrPort(netip.AddrPort{}, netip.MustParseAddrPort("192.0.2.53:53"))
	if err != nil {
		t.Fatal(err)
	}
	defer dns.Close()
	roundTrip(t, dns, "query")

	// The registry shows each flow, with its client, rule and bytes.
	waitFor(t, "the live flows' counters", func() bool {
		r, ok := l.liveFor("192.0.2.10:22")
		u, uok := l.liveFor("192.0.2.53:53")
		return ok && r.BytesUp == 12 && r.BytesDown == 12 && uok && u.BytesUp == 5 && u.BytesDown == 5
	})
	r, _ := l.liveFor("192.0.2.10:22")
	if r.User != "alice@example.com" || r.Node != "alice-laptop" || r.Rule != 1 || r.Proto != wire.ProtoTCP || r.Src.Addr() != aliceAddr ||
		r.Reason != "allowed by rule 1: group:eng → 192.0.2.10:22/tcp" || !r.End.IsZero() || r.Start.IsZero() {
		t.Errorf("live ssh flow = %+v", r)
	}
	if n := len(l.c.LiveFlows()); n != 3 {
		t.Errorf("%d live flows, want 3", n)
	}

	// The policy drops ssh and dns: both are cut before apply returns.
	start := time.Now()
	nm2 := netMap([]string{"192.0.2.0/24"}, true, peer("alice-laptop", "alice@example.com", aliceAddr, grant("192.0.2.10/32", "80", wire.ProtoTCP, 1)))
	if cut := l.apply(nm2); cut != 2 {
		t.Errorf("apply cut %d flows, want 2", cut)
	}
	waitReset(t, sshConn, 2*time.Second-time.Since(start))
	if err := recv(t, "the LAN end of the ssh flow", ssh.ended); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("the LAN host's end of the cut flow: %v, want a reset", err)
	}
	waitFor(t, "the cut flows to leave the registry", func() bool {
		_, ok1 := l.liveFor("192.0.2.10:22")
		_, ok2 := l.liveFor("192.0.2.53:53")
		return !ok1 && !ok2
	})
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("cutting took %v, want at most 2s", d)
	}
	// The flow the policy still allows goes on, now under rule 1.
	roundTrip(t, webConn, "still here")

	for _, dst := range []string{"192.0.2.10:22", "192.0.2.53:53"} {
		waitFor(t, "the record of "+dst, func() bool { return len(l.endedFor(dst)) == 1 })
		rec := l.endedFor(dst)[0]
		if !strings.Contains(rec.Reason, "cut: denied by policy: no rule lets alice@example.com reach "+dst) || rec.BytesUp == 0 || rec.BytesDown == 0 {
			t.Errorf("record of the cut flow to %s: %+v", dst, rec)
		}
	}

	// The client is removed: its last flow is cut too.
	if cut := l.apply(netMap([]string{"192.0.2.0/24"}, true)); cut != 1 {
		t.Errorf("removing the client cut %d flows, want 1", cut)
	}
	waitReset(t, webConn, 2*time.Second)
	waitFor(t, "the web flow's record", func() bool { return len(l.endedFor("192.0.2.10:80")) == 1 })
	rec := l.endedFor("192.0.2.10:80")[0]
	if !strings.Contains(rec.Reason, "cut: denied: source 100.96.0.2 is not an enrolled client") ||
		rec.BytesUp != uint64(len("GET / HTTP/1.0\r\n\r\nstill here")) || rec.BytesDown != rec.BytesUp || rec.Rule != 2 {
		t.Errorf("record of the removed client's flow: %+v", rec)
	}
	if n := len(l.c.LiveFlows()); n != 0 {
		t.Errorf("%d live flows after every one was cut", n)
	}
}

// TestFlowRecords checks the record of a flow that ends by itself, with
// its bytes, and that IDs are unique.
func TestFlowRecords(t *testing.T) {
	web := newLANHost(t, nil)
	l := newLab(t, map[string]string{"tcp 192.0.2.10:80": web.addr()})
	l.apply(netMap([]string{"192.0.2.0/24"}, false, peer("alice-laptop", "alice@example.com", aliceAddr)))
	tnet := l.client(aliceAddr)
	for range 3 {
		c, err := tnet.DialContextTCPAddrPort(context.Background(), netip.MustParseAddrPort("192.0.2.10:80"))
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, c, "hello")
		c.CloseWrite()
		io.Copy(io.Discard, c)
		c.Close()
	}
	waitFor(t, "three records", func() bool { return len(l.endedFor("192.0.2.10:80")) == 3 })
	var ids []string
	for _, rec := range l.endedFor("192.0.2.10:80") {
		ids = append(ids, rec.ID)
		want := "allowed: no policy is set, so every client reaches every routed destination"
		if rec.Reason != want || rec.Rule != 0 || rec.BytesUp != 5 || rec.BytesDown != 5 || rec.End.Before(rec.Start) || rec.User != "alice@example.com" {
			t.Errorf("record %+v", rec)
		}
	}
	slices.Sort(ids)
	if len(slices.Compact(ids)) != 3 {
		t.Errorf("record IDs are not unique: %v", ids)
	}
}

// TestUDPFlowEndsByItself: a UDP flow whose tunnel side ends (the stack's
// idle timeout) ends its handler and is recorded.
func TestUDPFlowEndsByItself(t *testing.T) {
	servers := lanServers(t)
	l := newLab(t, map[string]string{"udp 192.0.2.53:53": servers["udp 192.0.2.53:53"]})
	l.apply(netMap([]string{"192.0.2.0/24"}, false, peer("alice-laptop", "alice@example.com", aliceAddr)))
	done := make(chan string, 1)
	go func() {
		done <- l.handle(netstack.Flow{Src: netip.MustParseAddrPort("100.96.0.2:5000"), Dst: netip.MustParseAddrPort("192.0.2.53:53"), Proto: netstack.ProtoUDP})
	}()
	if got := recv(t, "HandleUDP to return", done); got != "not prohibited" {
		t.Errorf("HandleUDP: %s, want an allowed flow", got)
	}
	if n := len(l.endedFor("192.0.2.53:53")); n != 1 {
		t.Errorf("%d records of the flow, want 1", n)
	}
}

// TestAbortFlow cuts one flow by its ID.
func TestAbortFlow(t *testing.T) {
	web := newLANHost(t, nil)
	l := newLab(t, map[string]string{"tcp 192.0.2.10:80": web.addr()})
	l.apply(netMap([]string{"192.0.2.0/24"}, false, peer("alice-laptop", "alice@example.com", aliceAddr)))
	c, err := l.client(aliceAddr).DialContextTCPAddrPort(context.Background(), netip.MustParseAddrPort("192.0.2.10:80"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c, "x")
	r, ok := l.liveFor("192.0.2.10:80")
	if !ok {
		t.Fatal("no live flow")
	}
	if l.c.AbortFlow("no-such-id", "test") {
		t.Error("AbortFlow of an unknown ID reported a flow")
	}
	if !l.c.AbortFlow(r.ID, "an admin asked") {
		t.Fatal("AbortFlow did not find the flow")
	}
	waitReset(t, c, 2*time.Second)
	waitFor(t, "the record", func() bool { return len(l.endedFor("192.0.2.10:80")) == 1 })
	if rec := l.endedFor("192.0.2.10:80")[0]; !strings.HasSuffix(rec.Reason, "; cut: an admin asked") {
		t.Errorf("reason %q", rec.Reason)
	}
}

// TestProxyProtocol checks the PROXY v2 header a route with
// ProxyProtocol gets, with go-proxyproto's own reader: the client's
// overlay address and port as the source, the address it asked for as the
// destination, the user and node in TLVs 0xE0 and 0xE1, then the client's
// bytes; and that a route without it gets none.
func TestProxyProtocol(t *testing.T) {
	headers := make(chan *proxyproto.Header, 1)
	withPP := newLANHost(t, func(c net.Conn, r *bufio.Reader) error {
		h, err := proxyproto.Read(r)
		if err != nil {
			return err
		}
		headers <- h
		return nil
	})
	firstBytes := make(chan string, 1)
	without := newLANHost(t, func(c net.Conn, r *bufio.Reader) error {
		b, err := r.Peek(5)
		firstBytes <- string(b)
		return err
	})
	l := newLab(t, map[string]string{
		"tcp 192.0.2.10:80":    withPP.addr(),
		"tcp 198.51.100.10:80": without.addr(),
	})
	l.apply(netMap([]string{"192.0.2.0/24+", "198.51.100.0/24"}, false, peer("alice-laptop", "alice@example.com", aliceAddr)))
	tnet := l.client(aliceAddr)

	c, err := tnet.DialContextTCPAddrPort(context.Background(), netip.MustParseAddrPort("192.0.2.10:80"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c, "hello")
	h := recv(t, "the proxy header", headers)
	src, dst, ok := h.TCPAddrs()
	local := c.LocalAddr().(*net.TCPAddr)
	if !ok || h.Version != 2 || h.Command != proxyproto.PROXY || src.AddrPort() != netip.AddrPortFrom(aliceAddr, uint16(local.Port)) ||
		dst.AddrPort() != netip.MustParseAddrPort("192.0.2.10:80") {
		t.Errorf("header: version %d command %v, %v -> %v, want v2 PROXY %v:%d -> 192.0.2.10:80", h.Version, h.Command, src, dst, aliceAddr, local.Port)
	}
	tlvs, err := h.TLVs()
	if err != nil {
		t.Fatal(err)
	}
	got := map[proxyproto.PP2Type]string{}
	for _, tlv := range tlvs {
		got[tlv.Type] = string(tlv.Value)
	}
	if got[ProxyTLVUser] != "alice@example.com" || got[ProxyTLVNode] != "alice-laptop" || len(got) != 2 {
		t.Errorf("TLVs %v, want the user in 0xE0 and the node in 0xE1", got)
	}

	c2, err := tnet.DialContextTCPAddrPort(context.Background(), netip.MustParseAddrPort("198.51.100.10:80"))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	roundTrip(t, c2, "plain")
	if b := recv(t, "the first bytes", firstBytes); b != "plain" {
		t.Errorf("a route without proxy protocol got %q first, want the client's bytes", b)
	}
}
