package netstack

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// TCP buffer sizes, as Tailscale's wgengine/netstack sets them
// (netstack_tcpbuf_default.go): gVisor's 1 MiB defaults at socket
// creation, growing (receive-buffer moderation) to 8 MiB for receive and
// 6 MiB for send. gVisor's own maximum is 4 MiB, which caps the window on
// high bandwidth-delay paths: Tailscale measured 151 → 249 Mbit/s (gVisor
// sending) and 280 → 416 Mbit/s (gVisor receiving) at 100 ms RTT when it
// raised them (tailscale d9d9d525d). Memory is only committed as a flow's
// window actually grows.
const (
	tcpRcvBufMin     = tcp.MinBufferSize
	tcpRcvBufDefault = tcp.DefaultReceiveBufferSize
	tcpRcvBufMax     = 8 << 20
	tcpSndBufMin     = tcp.MinBufferSize
	tcpSndBufDefault = tcp.DefaultSendBufferSize
	tcpSndBufMax     = 6 << 20
)

// setTCPOptions sets every TCP option we rely on explicitly, rather than
// trusting gVisor's defaults to stay put.
func setTCPOptions(s *stack.Stack) error {
	sack := tcpip.TCPSACKEnabled(true) // without it one lost segment costs a round of go-back-N
	moderate := tcpip.TCPModerateReceiveBufferOption(true)
	// Reno. CUBIC in the gVisor of 2025-05 could overflow its window
	// arithmetic (google/gvisor#11632; Tailscale pins reno for the same
	// reason). In the gVisor of 2026-09 it keeps round trips during a
	// download short (3.1-3.5 ms at p50 against Reno's 12) but, leaving
	// slow start early, moved 1.7-2.0 Gbit/s against Reno's 2.3-2.5, and
	// 90-100 Mbit/s against 380-560 under T8's losses (demo lab).
	reno := tcpip.CongestionControlOption("reno")
	// Loss recovery: SACK-based, RACK off, and a 50 ms minimum RTO.
	// Under 1 % random loss between laptop and connector (the bench's
	// T8, direct path, a lab RTT well under a millisecond), gVisor as
	// the sender moved 75 Mbit/s with RACK on and the 200 ms default:
	// it kept falling back to retransmission timeouts, each one 200 ms
	// of nothing. RACK off: 190-250; RACK off and 50 ms: 490 (RACK on and
	// 50 ms: 130). Lossless downloads did not suffer (direct 2.4-2.9
	// Gbit/s against 1.9-2.5 with RACK; relay the same within noise).
	// RACK had been turned on when the relay path reordered and the lab's
	// veths reordered flows; neither is the case now. The gVisor of
	// 2026-09, with its RACK timing fixes (google/gvisor#9707), did no
	// better with RACK on: 225-329 Mbit/s under T8's losses against
	// 356-537 off, and lossless downloads 1.95-2.16 Gbit/s against
	// 2.51-2.70 (demo lab, two pairs). 50 ms stays above
	// a Linux receiver's 40 ms minimum delayed ACK, and on a path whose
	// RTT is longer than about 12 ms the RTO is above it anyway.
	recovery := tcpip.TCPRecovery(0)
	minRTO := tcpip.TCPMinRTOOption(50 * time.Millisecond)
	rcv := tcpip.TCPReceiveBufferSizeRangeOption{Min: tcpRcvBufMin, Default: tcpRcvBufDefault, Max: tcpRcvBufMax}
	snd := tcpip.TCPSendBufferSizeRangeOption{Min: tcpSndBufMin, Default: tcpSndBufDefault, Max: tcpSndBufMax}
	for _, o := range []struct {
		name string
		opt  tcpip.SettableTransportProtocolOption
	}{
		{"sack", &sack},
		{"receive buffer moderation", &moderate},
		{"congestion control", &reno},
		{"loss recovery", &recovery},
		{"minimum rto", &minRTO},
		{"receive buffer sizes", &rcv},
		{"send buffer sizes", &snd},
	} {
		if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, o.opt); err != nil {
			return fmt.Errorf("setting tcp %s: %w", o.name, convertErr(err))
		}
	}
	return nil
}

// handleTCPPacket is the TCP default handler: it sees every TCP segment
// that matches no endpoint. SYNs are admitted against the in-flight bounds
// before gVisor's forwarder launches a handler goroutine for them.
//
// Accounting: an ID enters tcpInFlight (and the handlers WaitGroup) before
// the forwarder sees the SYN and leaves only after the request is
// completed, so tcpInFlight always holds every ID in the forwarder's own
// in-flight map. The forwarder therefore never ignores a SYN as a
// duplicate or over its limit, and it launches a goroutine exactly when it
// returns true.
func (s *Stack) handleTCPPacket(id stack.TransportEndpointID, pkt *stack.PacketBuffer) bool {
	h := header.TCP(pkt.TransportHeader().Slice())
	if len(h) < header.TCPMinimumSize {
		return s.tcpFwd.HandlePacket(id, pkt)
	}
	if flags := h.Flags(); !flags.Contains(header.TCPFlagSyn) || flags.Contains(header.TCPFlagAck) {
		return s.tcpFwd.HandlePacket(id, pkt) // not a SYN: false, and gVisor answers RST
	}
	src := addrPort(id.RemoteAddress, 0).Addr()

	s.mu.Lock()
	if s.shut {
		s.mu.Unlock()
		return true
	}
	if _, dup := s.tcpInFlight[id]; dup {
		s.mu.Unlock()
		return true // a retransmitted SYN while its handler runs
	}
	if len(s.tcpInFlight) >= s.cfg.MaxInFlightTCP || s.tcpBySource[src] >= s.cfg.MaxInFlightTCPPerSource {
		global, perSource := len(s.tcpInFlight), s.tcpBySource[src]
		s.mu.Unlock()
		s.stats.tcpDropped.Add(1)
		s.rl.tcpBound.log(s.log, slog.LevelWarn, "dropping a tcp syn: too many handshakes in progress",
			"src", src, "in_flight", global, "in_flight_src", perSource)
		return true // dropped; the client retransmits
	}
	s.tcpInFlight[id] = src
	s.tcpBySource[src]++
	s.tcpPeak = max(s.tcpPeak, len(s.tcpInFlight))
	s.handlers.Add(1)
	s.mu.Unlock()

	if !s.tcpFwd.HandlePacket(id, pkt) {
		// Not a well-formed SYN after all; no goroutine was launched.
		s.releaseTCP(id)
		s.handlers.Done()
		return false
	}
	return true
}

// releaseTCP frees id's in-flight slot.
func (s *Stack) releaseTCP(id stack.TransportEndpointID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	src, ok := s.tcpInFlight[id]
	if !ok {
		return
	}
	delete(s.tcpInFlight, id)
	if s.tcpBySource[src]--; s.tcpBySource[src] <= 0 {
		delete(s.tcpBySource, src)
	}
}

// handleTCPRequest runs in the goroutine gVisor's forwarder launches for
// an admitted SYN; handleTCPPacket counted it in s.handlers.
func (s *Stack) handleTCPRequest(r *tcp.ForwarderRequest) {
	defer s.handlers.Done()
	s.stats.tcpActive.Add(1)
	defer s.stats.tcpActive.Add(-1)

	id := r.ID()
	f := Flow{
		Src:   addrPort(id.RemoteAddress, id.RemotePort),
		Dst:   addrPort(id.LocalAddress, id.LocalPort),
		Proto: ProtoTCP,
	}
	a := &acceptor{s: s, r: r, id: id, src: f.Src}
	defer a.finish()
	if s.ctx.Err() != nil {
		return
	}
	s.cfg.Handler.HandleTCP(s.ctx, f, a.accept)
}

// tcpConn is the tunnel side of an accepted TCP flow: gonet's conn, and
// the endpoint and wait queue under it, for ProxyCount's copies without a
// user-space buffer (sockcopy_linux.go).
type tcpConn struct {
	*gonet.TCPConn
	ep tcpip.Endpoint
	wq *waiter.Queue
}

// Abort resets the flow: the client gets a TCP RST rather than a FIN.
// Close must still follow, to free the endpoint.
func (c *tcpConn) Abort() { c.ep.Abort() }

// acceptor is one flow's accept function and its state.
type acceptor struct {
	s   *Stack
	r   *tcp.ForwarderRequest
	id  stack.TransportEndpointID
	src netip.AddrPort

	mu     sync.Mutex // guards the fields below; held across the handshake
	called bool       // accept was called, or finish ran
	conn   *tcpConn
}

// accept completes the handshake and returns the tunnel side of the flow.
func (a *acceptor) accept() (net.Conn, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.called {
		return nil, errAccepted
	}
	a.called = true
	if a.s.ctx.Err() != nil {
		a.complete(true)
		return nil, ErrClosed
	}
	wq := new(waiter.Queue)
	ep, err := a.r.CreateEndpoint(wq) // blocks until the handshake ends
	if err != nil {
		a.complete(true)
		a.s.rl.tcpHandshake.log(a.s.log, slog.LevelDebug, "tcp handshake with the client failed", "src", a.src, "err", err)
		if a.s.ctx.Err() != nil {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("completing the handshake with %v: %w", a.src, convertErr(err))
	}
	a.complete(false)
	// Keepalive with gVisor's (Linux's) timers, so a flow whose client
	// vanished is eventually reaped without killing idle sessions of a
	// sleeping laptop.
	ep.SocketOptions().SetKeepAlive(true)
	a.conn = &tcpConn{TCPConn: gonet.NewTCPConn(wq, ep), ep: ep, wq: wq}
	return a.conn, nil
}

// complete completes the forwarder request (with a RST if rst) and frees
// the in-flight slot.
func (a *acceptor) complete(rst bool) {
	a.r.Complete(rst)
	a.s.releaseTCP(a.id)
}

// finish runs when HandleTCP returns: a flow never accepted is refused
// with a RST; an accepted one has its conn closed.
func (a *acceptor) finish() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.called {
		a.called = true
		a.complete(true)
		return
	}
	if a.conn != nil {
		a.conn.Close()
	}
}
