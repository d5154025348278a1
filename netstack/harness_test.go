package netstack

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// Addresses used by the tests: the Stack is the connector (nodeV4/nodeV6),
// the client stack is a laptop (clientV4/clientV6), and foreign hosts sit
// in the documentation ranges.
var (
	nodeV4   = netip.MustParseAddr("100.96.0.1")
	nodeV6   = netip.MustParseAddr("fd7a:115c:a1e0::1")
	clientV4 = netip.MustParseAddr("100.96.0.2")
	clientV6 = netip.MustParseAddr("fd7a:115c:a1e0::2")
)

// wgOffset mimics the offset wireguard-go reads and writes packets at
// (device.MessageTransportHeaderSize).
const wgOffset = 16

// testTimeout bounds every wait in these tests.
const testTimeout = 10 * time.Second

// waitFor polls cond until it holds or testTimeout passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// recv receives from ch or fails after testTimeout.
func recv[T any](t testing.TB, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(testTimeout):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// checkLeaks registers a cleanup, run after every later cleanup, that
// fails the test if goroutines of this package or of gVisor outlive it.
// Call it first in a test.
func checkLeaks(t *testing.T) {
	t.Cleanup(func() {
		var left []string
		deadline := time.Now().Add(testTimeout)
		for {
			left = leakedGoroutines()
			if len(left) == 0 {
				return
			}
			if time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Errorf("%d goroutines leaked:\n%s", len(left), strings.Join(left, "\n\n"))
	})
}

// goroutineStacks returns the stack of every goroutine, the caller's
// first.
func goroutineStacks() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Split(string(buf[:n]), "\n\n")
		}
		buf = make([]byte, 2*len(buf))
	}
}

func leakedGoroutines() []string {
	var left []string
	for i, g := range goroutineStacks() {
		if i == 0 || strings.Contains(g, "testing.tRunner(") {
			continue // this goroutine, or a test function waiting for its subtests
		}
		if strings.Contains(g, "gvisor.dev/gvisor") || strings.Contains(g, "warren/netstack.") {
			left = append(left, g)
		}
	}
	return left
}

// funcs is a FlowHandler built from functions; a nil function refuses.
type funcs struct {
	tcp  func(ctx context.Context, f Flow, accept func() (net.Conn, error))
	udp  func(ctx context.Context, f Flow, conn net.Conn)
	ping func(ctx context.Context, f Flow, payload []byte) PingVerdict
}

func (h *funcs) HandleTCP(ctx context.Context, f Flow, accept func() (net.Conn, error)) {
	if h.tcp != nil {
		h.tcp(ctx, f, accept)
	}
}

func (h *funcs) HandleUDP(ctx context.Context, f Flow, conn net.Conn) {
	if h.udp != nil {
		h.udp(ctx, f, conn)
	}
}

func (h *funcs) HandlePing(ctx context.Context, f Flow, payload []byte) PingVerdict {
	if h.ping == nil {
		return PingDrop
	}
	return h.ping(ctx, f, payload)
}

// testLogger logs to the test.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// newStack builds a Stack for a test and closes it on cleanup.
func newStack(t testing.TB, cfg Config) *Stack {
	t.Helper()
	if cfg.Addresses == nil {
		cfg.Addresses = []netip.Addr{nodeV4, nodeV6}
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// pair joins a Stack and a plain gVisor "client" stack, as if the client
// were a laptop on the far side of the tunnel: two goroutines move packets
// between the Stack's Read/Write (in batches, at wireguard-go's offset)
// and the client's channel link. The client link drops when its queue is
// full, so the pumps can never deadlock each other.
type pair struct {
	t      testing.TB
	stack  *Stack
	client *stack.Stack
	cep    *channel.Endpoint

	// toClient, if set, sees every packet the Stack sends to the client.
	toClient atomic.Pointer[func([]byte)]

	cancel context.CancelFunc
	pumps  sync.WaitGroup
}

// newPair builds a Stack from cfg and a client, and pumps packets between
// them until cleanup.
func newPair(t testing.TB, cfg Config) *pair {
	t.Helper()
	s := newStack(t, cfg)
	mtu, _ := s.MTU()
	p := &pair{t: t, stack: s}
	p.client, p.cep = newClientStack(t, mtu)
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.pumps.Add(2)
	go p.pumpToStack(ctx)
	go p.pumpToClient(mtu)
	t.Cleanup(p.stop)
	return p
}

func newClientStack(t testing.TB, mtu int) (*stack.Stack, *channel.Endpoint) {
	t.Helper()
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol},
	})
	ep := channel.New(4096, uint32(mtu), "")
	if err := s.CreateNIC(1, ep); err != nil {
		t.Fatalf("client CreateNIC: %v", err)
	}
	for _, a := range []netip.Addr{clientV4, clientV6} {
		proto := ipv4.ProtocolNumber
		if a.Is6() {
			proto = ipv6.ProtocolNumber
		}
		pa := tcpip.ProtocolAddress{Protocol: proto, AddressWithPrefix: tcpip.AddrFromSlice(a.AsSlice()).WithPrefix()}
		if err := s.AddProtocolAddress(1, pa, stack.AddressProperties{}); err != nil {
			t.Fatalf("client AddProtocolAddress: %v", err)
		}
	}
	s.SetRouteTable([]tcpip.Route{
		{Destination: header.IPv4EmptySubnet, NIC: 1},
		{Destination: header.IPv6EmptySubnet, NIC: 1},
	})
	sack := tcpip.TCPSACKEnabled(true)
	s.SetTransportProtocolOption(tcp.ProtocolNumber, &sack)
	return s, ep
}

// stop ends the pumps and closes both stacks.
func (p *pair) stop() {
	p.cancel()
	p.stack.Close()
	p.pumps.Wait()
	p.client.Close()
	p.client.Wait()
	p.cep.Close()
}

// pumpToStack moves the client's packets into the Stack, batching what is
// queued. Like wireguard-go it reuses its buffers: Write copies what it
// keeps.
func (p *pair) pumpToStack(ctx context.Context) {
	defer p.pumps.Done()
	store := make([][]byte, batchSize)
	bufs := make([][]byte, 0, batchSize)
	for {
		pkt := p.cep.ReadContext(ctx)
		if pkt == nil {
			return
		}
		bufs = bufs[:0]
		for pkt != nil {
			b := store[len(bufs)][:0]
			b = append(b, make([]byte, wgOffset)...)
			for _, v := range pkt.AsSlices() {
				b = append(b, v...)
			}
			pkt.DecRef()
			store[len(bufs)] = b
			bufs = append(bufs, b)
			if len(bufs) == batchSize {
				break
			}
			pkt = p.cep.Read()
		}
		if _, err := p.stack.Write(bufs, wgOffset); err != nil {
			return
		}
	}
}

// pumpToClient moves the Stack's packets to the client.
func (p *pair) pumpToClient(mtu int) {
	defer p.pumps.Done()
	bufs := make([][]byte, batchSize)
	for i := range bufs {
		bufs[i] = make([]byte, wgOffset+mtu)
	}
	sizes := make([]int, batchSize)
	for {
		n, err := p.stack.Read(bufs, sizes, wgOffset)
		if err != nil {
			if !errors.Is(err, ErrClosed) {
				p.t.Errorf("Read: %v", err)
			}
			return
		}
		for i := range n {
			pkt := bufs[i][wgOffset : wgOffset+sizes[i]]
			if f := p.toClient.Load(); f != nil {
				(*f)(pkt)
			}
			injectInto(p.cep, pkt)
		}
	}
}

// injectInto delivers a raw IP packet to a client link.
func injectInto(ep *channel.Endpoint, pkt []byte) {
	proto := ipv4.ProtocolNumber
	if pkt[0]>>4 == 6 {
		proto = ipv6.ProtocolNumber
	}
	pb := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(pkt)})
	ep.InjectInbound(proto, pb)
	pb.DecRef()
}

// watch sets f to see every packet sent to the client until cleanup.
func (p *pair) watch(f func([]byte)) {
	p.toClient.Store(&f)
	p.t.Cleanup(func() { p.toClient.Store(nil) })
}

func fullAddr(ap netip.AddrPort) (tcpip.FullAddress, tcpip.NetworkProtocolNumber) {
	proto := ipv4.ProtocolNumber
	if ap.Addr().Is6() {
		proto = ipv6.ProtocolNumber
	}
	return tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFromSlice(ap.Addr().AsSlice()), Port: ap.Port()}, proto
}

// dialTCP connects from the client to dst through the Stack.
func (p *pair) dialTCP(ctx context.Context, dst netip.AddrPort) (*gonet.TCPConn, error) {
	fa, proto := fullAddr(dst)
	return gonet.DialContextTCP(ctx, p.client, fa, proto)
}

// dialUDP opens a client UDP socket connected to dst.
func (p *pair) dialUDP(dst netip.AddrPort) (*gonet.UDPConn, error) {
	fa, proto := fullAddr(dst)
	return gonet.DialUDP(p.client, nil, &fa, proto)
}

// Loopback servers for handlers to dial.

// server is a loopback TCP listener whose connections are served by fn.
type server struct {
	ln net.Listener
	wg sync.WaitGroup
}

func newServer(t *testing.T, fn func(c *net.TCPConn)) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &server{ln: ln}
	srv.wg.Add(1)
	go func() {
		defer srv.wg.Done()
		var conns sync.WaitGroup
		defer conns.Wait()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer conns.Done()
				defer c.Close()
				fn(c.(*net.TCPConn))
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		srv.wg.Wait()
	})
	return srv
}

func (srv *server) addr() string { return srv.ln.Addr().String() }

// echoServer echoes every connection and half-closes after EOF.
func echoServer(t *testing.T) *server {
	return newServer(t, func(c *net.TCPConn) {
		io.Copy(c, c)
		c.CloseWrite()
	})
}

// dialHandler is a connector-like handler: TCP to a destination in
// targets is dialled at the mapped loopback address, then accepted and
// proxied; other destinations are refused. Every HandleTCP's flow is sent
// to flows if set, and its Proxy result to results.
type dialHandler struct {
	targets map[netip.AddrPort]string
	flows   chan Flow
	results chan proxyResult
	// beforeProxy, if set, runs between accept and ProxyCount.
	beforeProxy func(tunnel net.Conn)
}

type proxyResult struct {
	counts Counts
	err    error
}

func (h *dialHandler) HandleTCP(ctx context.Context, f Flow, accept func() (net.Conn, error)) {
	if h.flows != nil {
		h.flows <- f
	}
	target, ok := h.targets[f.Dst]
	if !ok {
		return
	}
	d := net.Dialer{Timeout: 2 * time.Second}
	upstream, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return
	}
	tunnel, err := accept()
	if err != nil {
		upstream.Close()
		return
	}
	if h.beforeProxy != nil {
		h.beforeProxy(tunnel)
	}
	c, err := ProxyCount(ctx, tunnel, upstream)
	if h.results != nil {
		h.results <- proxyResult{c, err}
	}
}

func (h *dialHandler) HandleUDP(ctx context.Context, f Flow, conn net.Conn) {}

func (h *dialHandler) HandlePing(ctx context.Context, f Flow, payload []byte) PingVerdict {
	return PingDrop
}

// dialProxied starts a pair whose handler proxies dst to the loopback
// address target, and dials dst from the client. It returns the client's
// conn (closed at cleanup), the pair, and where the handler's Proxy
// result arrives.
func dialProxied(t *testing.T, dst netip.AddrPort, target string) (*gonet.TCPConn, *pair, <-chan proxyResult) {
	t.Helper()
	h := &dialHandler{targets: map[netip.AddrPort]string{dst: target}, results: make(chan proxyResult, 1)}
	p := newPair(t, Config{Handler: h})
	c, err := p.dialTCP(context.Background(), dst)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, p, h.results
}

// wantProxied waits for a handler's Proxy to finish and checks that it
// ended cleanly having copied want.
func wantProxied(t *testing.T, results <-chan proxyResult, want Counts) {
	t.Helper()
	res := recv(t, "the proxy to finish", results)
	if res.err != nil {
		t.Errorf("Proxy: %v", res.err)
	}
	if diff := cmp.Diff(want, res.counts); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
}

// readAll reads c to EOF within testTimeout.
func readAll(t *testing.T, c net.Conn) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(testTimeout))
	var b bytes.Buffer
	if _, err := io.Copy(&b, c); err != nil {
		t.Fatalf("reading to EOF: %v", err)
	}
	return b.Bytes()
}
