package netstack

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/tun"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// nicID is the stack's only NIC.
const nicID tcpip.NICID = 1

// batchSize is the most packets one Read returns and what BatchSize
// reports: wireguard-go's conn.IdealBatchSize, so a Read can fill a whole
// send batch.
const batchSize = 128

// closeAbortEvery is how often Close re-aborts the stack's endpoints while
// it waits for flow handlers: an accept racing with Close can register an
// endpoint after an abort pass, and the next pass catches it.
const closeAbortEvery = 50 * time.Millisecond

// Stack is a gVisor TCP/IP stack presented as a wireguard-go tun.Device.
// It terminates every TCP and UDP flow written into it, whatever the
// destination address, and hands each to the FlowHandler; it answers echo
// requests to foreign addresses when the handler says so.
//
// wireguard-go calls Read and Write from its own goroutines; the Stack
// runs each flow handler in a goroutine it owns. Close stops everything
// and waits; Read then returns ErrClosed.
type Stack struct {
	cfg     Config
	log     *slog.Logger
	ipstack *stack.Stack
	link    *link
	tcpFwd  *tcp.Forwarder
	events  chan tun.Event
	own     map[netip.Addr]bool // the node's addresses; immutable (terminating mode)

	// local is set for a Stack made by NewLocal: it owns its addresses
	// and dials out (dial.go), and terminates nothing.
	local bool
	// addrMu serialises SetAddresses and guards addrs, the addresses a
	// local Stack owns now.
	addrMu sync.Mutex
	addrs  []netip.Addr

	// ctx is handed to every handler and ends when Close starts.
	ctx    context.Context
	cancel context.CancelFunc

	closing   atomic.Bool // Close has started; Write refuses packets
	closeOnce sync.Once

	readMu sync.Mutex // serialises Read; guards seg
	seg    segmenter  // the offload packet Read is splitting

	// mu guards the fields below. Handler goroutines are added to handlers
	// only under mu with shut false, and Close sets shut under mu before it
	// waits, so the wait cannot miss a goroutine.
	mu          sync.Mutex
	shut        bool
	tcpInFlight map[stack.TransportEndpointID]netip.Addr // handshakes in progress → source
	tcpBySource map[netip.Addr]int                       // handshakes in progress per source
	tcpPeak     int                                      // highest len(tcpInFlight)
	udpFlows    map[flowKey]*udpFlow                     // nil value: being created
	pings       int                                      // HandlePing calls running

	handlers sync.WaitGroup // flow handler goroutines (TCP, UDP, ping)
	loops    sync.WaitGroup // the Stack's own long-lived goroutines

	stats counters
	rl    limiters
}

var _ tun.Device = (*Stack)(nil)

// counters are the Stack's event counts; see Stats.
type counters struct {
	tcpActive     atomic.Int64
	tcpDropped    atomic.Uint64
	udpDropped    atomic.Uint64
	pingsDropped  atomic.Uint64
	pingsAnswered atomic.Uint64
	badPackets    atomic.Uint64
	oversized     atomic.Uint64
	segmented     atomic.Uint64

	prohibited        atomic.Uint64
	prohibitedDropped atomic.Uint64
}

// limiters rate-limit the per-packet and per-flow log lines.
type limiters struct {
	badPacket, oversized, tcpBound, tcpHandshake, udpBound, udpEndpoint, pingBound, pingQueue, prohibited rateLimited
}

// New builds a Stack from cfg. The Stack is up at once: Events delivers
// EventUp.
func New(cfg Config) (*Stack, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := build(cfg.withDefaults())
	if err := s.configure(); err != nil {
		s.destroy()
		return nil, err
	}
	s.loops.Add(1)
	go s.reapUDP()
	s.events <- tun.EventUp
	return s, nil
}

// build returns a Stack for cfg (with defaults) whose gVisor stack has no
// NIC yet.
func build(cfg Config) *Stack {
	s := &Stack{
		cfg:  cfg,
		log:  cfg.Logger,
		link: newLink(cfg.MTU),
		ipstack: stack.New(stack.Options{
			NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol},
			TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol},
		}),
		events:      make(chan tun.Event, 1),
		own:         make(map[netip.Addr]bool),
		tcpInFlight: make(map[stack.TransportEndpointID]netip.Addr),
		tcpBySource: make(map[netip.Addr]int),
		udpFlows:    make(map[flowKey]*udpFlow),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	return s
}

// destroy releases a Stack whose configuration failed.
func (s *Stack) destroy() {
	s.cancel()
	s.link.close()
	s.ipstack.Destroy()
}

// configure sets up the NIC, addresses, routes, TCP options and the
// forwarders.
func (s *Stack) configure() error {
	if err := s.ipstack.CreateNIC(nicID, s.link); err != nil {
		return fmt.Errorf("creating the nic: %w", convertErr(err))
	}
	// Promiscuous: accept packets to any address, not only our own, so a
	// SYN to a LAN host reaches the forwarder. Spoofing: let endpoints send
	// from those addresses, so replies carry the original destination as
	// their source.
	if err := s.ipstack.SetPromiscuousMode(nicID, true); err != nil {
		return fmt.Errorf("enabling promiscuous mode: %w", convertErr(err))
	}
	if err := s.ipstack.SetSpoofing(nicID, true); err != nil {
		return fmt.Errorf("enabling spoofing: %w", convertErr(err))
	}
	for _, a := range s.cfg.Addresses {
		if err := s.ipstack.AddProtocolAddress(nicID, protocolAddress(a), stack.AddressProperties{}); err != nil {
			return fmt.Errorf("adding address %v: %w", a, convertErr(err))
		}
		s.own[a] = true
	}
	s.ipstack.SetRouteTable([]tcpip.Route{
		{Destination: header.IPv4EmptySubnet, NIC: nicID},
		{Destination: header.IPv6EmptySubnet, NIC: nicID},
	})
	if err := setTCPOptions(s.ipstack); err != nil {
		return err
	}
	// gVisor's own in-flight bound is never reached: ours (handleTCPPacket)
	// is checked first and counts a superset of gVisor's requests.
	s.tcpFwd = tcp.NewForwarder(s.ipstack, tcpRcvBufDefault, s.cfg.MaxInFlightTCP, s.handleTCPRequest)
	s.ipstack.SetTransportProtocolHandler(tcp.ProtocolNumber, s.handleTCPPacket)
	s.ipstack.SetTransportProtocolHandler(udp.ProtocolNumber, s.handleUDPPacket)
	return nil
}

// Close stops the Stack: Read and Write fail with ErrClosed, every flow
// handler's ctx ends, UDP conns close, TCP endpoints are aborted, and
// Close waits for every goroutine the Stack started, including the flow
// handlers (so a handler that ignores ctx blocks Close). Then the Events
// channel is closed. Idempotent; always returns nil.
func (s *Stack) Close() error {
	s.closeOnce.Do(s.close)
	return nil
}

// close is Close's body. Shutdown order:
//  1. refuse Writes, end the handlers' ctx, close the link (Read returns
//     ErrClosed; gVisor writers blocked on a full queue give up);
//  2. under mu, mark the Stack shut so no handler goroutine starts after
//     this point, and close every UDP flow; stop the UDP reaper;
//  3. abort all endpoints, again every closeAbortEvery, until every
//     handler has returned;
//  4. close and wait for gVisor, which removes the NIC;
//  5. close Events.
func (s *Stack) close() {
	s.closing.Store(true)
	s.cancel()
	s.link.close() // wakes Read and any gVisor writer blocked on a full queue

	s.mu.Lock()
	s.shut = true
	flows := make([]*udpFlow, 0, len(s.udpFlows))
	for _, f := range s.udpFlows {
		if f != nil {
			flows = append(flows, f)
		}
	}
	s.mu.Unlock()
	for _, f := range flows {
		f.close()
	}
	s.loops.Wait()

	// Abort the endpoints (handshakes in progress fail, established conns
	// error out) until every handler has returned. The TCP protocol keeps
	// running meanwhile, so the aborts complete normally.
	done := make(chan struct{})
	go func() {
		s.handlers.Wait()
		close(done)
	}()
	t := time.NewTicker(closeAbortEvery)
	defer t.Stop()
	warnAt := time.Now().Add(5 * time.Second)
	for waiting := true; waiting; {
		for _, ep := range s.ipstack.RegisteredEndpoints() {
			ep.Abort()
		}
		select {
		case <-done:
			waiting = false
		case now := <-t.C:
			if now.After(warnAt) {
				s.log.Warn("netstack close is waiting for flow handlers that ignore their context")
				warnAt = now.Add(30 * time.Second)
			}
		}
	}
	s.ipstack.Close()
	s.ipstack.Wait() // also removes the NIC, detaching the link
	s.link.drain()
	// A packet Read was still splitting is released: Read returns at
	// once now that the link is closed.
	s.readMu.Lock()
	s.seg.reset()
	s.readMu.Unlock()
	close(s.events)
}

// Read implements tun.Device: it blocks until gVisor has at least one
// packet for the tunnel, then returns up to len(bufs) of them, each copied
// into bufs[i][offset:] with its length in sizes[i]. A TCP segmentation
// offload packet is returned as its MSS-sized segments, possibly spread
// over several Reads. A packet that does not fit its buffer is dropped and
// counted. After Close it returns ErrClosed.
func (s *Stack) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	if len(bufs) == 0 {
		return 0, nil
	}
	s.readMu.Lock()
	defer s.readMu.Unlock()
	n := 0
	for {
		for s.seg.pending && n < len(bufs) {
			if size, ok := s.seg.next(bufs[n], offset); ok {
				sizes[n] = size
				n++
			} else {
				s.seg.reset()
				s.oversizedPacket(s.seg.hdrLen+s.seg.mss, len(bufs[n])-offset)
			}
		}
		if n == len(bufs) {
			return n, nil
		}
		var pkt *stack.PacketBuffer
		if n == 0 {
			if pkt = s.link.next(); pkt == nil {
				s.seg.reset()
				return 0, ErrClosed
			}
		} else if pkt = s.link.tryNext(); pkt == nil {
			return n, nil
		}
		switch {
		case pkt.GSOOptions.Type != stack.GSONone:
			if s.seg.load(pkt) {
				s.stats.segmented.Add(1)
			} else {
				s.stats.badPackets.Add(1)
				s.rl.badPacket.log(s.log, slog.LevelWarn, "dropping an offload packet from gvisor that is not tcp", "size", pkt.Size())
			}
		default:
			if size, ok := copyPacket(bufs[n], offset, pkt); ok {
				sizes[n] = size
				n++
			} else {
				s.oversizedPacket(pkt.Size(), len(bufs[n])-offset)
			}
		}
		pkt.DecRef()
	}
}

func (s *Stack) oversizedPacket(size, room int) {
	s.stats.oversized.Add(1)
	s.rl.oversized.log(s.log, slog.LevelWarn, "dropping an outbound packet larger than the read buffer", "size", size, "buffer", room)
}

// copyPacket copies pkt into buf[offset:]; false if it does not fit.
func copyPacket(buf []byte, offset int, pkt *stack.PacketBuffer) (int, bool) {
	size := pkt.Size()
	if offset < 0 || offset > len(buf) || size > len(buf)-offset {
		return 0, false
	}
	dst := buf[offset:]
	n := 0
	for _, v := range pkt.AsSlices() {
		n += copy(dst[n:], v)
	}
	return n, true
}

// Write implements tun.Device: each bufs[i][offset:] is one IP packet from
// the tunnel. Echo requests to foreign addresses go to HandlePing; every
// other packet is copied into gVisor, consecutive TCP segments of a flow
// coalesced first (see inbound), and all of them have reached gVisor when
// Write returns. Bad packets are dropped and counted, not reported: Write
// returns len(bufs), or ErrClosed after Close.
func (s *Stack) Write(bufs [][]byte, offset int) (int, error) {
	if s.closing.Load() {
		return 0, ErrClosed
	}
	in := s.link.startInbound()
	if in == nil {
		return len(bufs), nil // the NIC is gone: Close is under way
	}
	defer s.link.finishInbound(in)
	for _, b := range bufs {
		if offset < 0 || offset > len(b) {
			s.badPacket("offset beyond the buffer", len(b))
			continue
		}
		s.writePacket(in, b[offset:])
	}
	return len(bufs), nil
}

func (s *Stack) writePacket(in *inbound, p []byte) {
	if len(p) == 0 {
		return
	}
	var proto tcpip.NetworkProtocolNumber
	switch p[0] >> 4 {
	case 4:
		if len(p) < header.IPv4MinimumSize {
			s.badPacket("truncated ipv4 header", len(p))
			return
		}
		proto = ipv4.ProtocolNumber
	case 6:
		if len(p) < header.IPv6MinimumSize {
			s.badPacket("truncated ipv6 header", len(p))
			return
		}
		proto = ipv6.ProtocolNumber
	default:
		s.badPacket("not ipv4 or ipv6", len(p))
		return
	}
	if s.interceptPing(p) {
		return
	}
	in.add(proto, p)
}

func (s *Stack) badPacket(why string, size int) {
	s.stats.badPackets.Add(1)
	s.rl.badPacket.log(s.log, slog.LevelDebug, "dropping a packet from the tunnel", "reason", why, "size", size)
}

// File implements tun.Device: there is no file.
func (s *Stack) File() *os.File { return nil }

// MTU implements tun.Device.
func (s *Stack) MTU() (int, error) { return s.cfg.MTU, nil }

// Name implements tun.Device.
func (s *Stack) Name() (string, error) { return "warren-netstack", nil }

// Events implements tun.Device: EventUp once, closed by Close.
func (s *Stack) Events() <-chan tun.Event { return s.events }

// BatchSize implements tun.Device.
func (s *Stack) BatchSize() int { return batchSize }

// Stats is a snapshot of the Stack's state and counters.
type Stats struct {
	TCPInFlight     int    // handshakes in progress: HandleTCP running, accept not yet returned
	TCPInFlightPeak int    // the highest TCPInFlight so far
	TCPActive       int    // HandleTCP calls running
	TCPDropped      uint64 // SYNs dropped at MaxInFlightTCP or MaxInFlightTCPPerSource
	UDPFlows        int    // live UDP flows
	UDPDropped      uint64 // datagrams dropped: MaxUDPFlows reached or endpoint errors
	PingsInFlight   int    // HandlePing calls running
	PingsAnswered   uint64 // echo replies sent for foreign addresses
	PingsDropped    uint64 // echo requests dropped at MaxPings, or replies for a full queue
	Prohibited      uint64 // ICMP administratively prohibited sent (Prohibit, PingProhibited)
	ProhibitedDrops uint64 // ... dropped for a full queue toward the tunnel
	BadPackets      uint64 // malformed packets dropped: by Write, or offload packets from gVisor
	Oversized       uint64 // packets Read dropped as larger than the caller's buffer
	Segmented       uint64 // TCP offload packets from gVisor that Read split into segments
	GVisorDropped   uint64 // packets gVisor dropped inside the stack, e.g. for a full TCP segment queue
	TCPRetransmits  uint64 // segments gVisor's TCP retransmitted toward the tunnel
}

// Stats returns a snapshot of the Stack's counters.
func (s *Stack) Stats() Stats {
	s.mu.Lock()
	st := Stats{
		TCPInFlight:     len(s.tcpInFlight),
		TCPInFlightPeak: s.tcpPeak,
		UDPFlows:        len(s.udpFlows),
		PingsInFlight:   s.pings,
	}
	s.mu.Unlock()
	st.TCPActive = int(s.stats.tcpActive.Load())
	st.TCPDropped = s.stats.tcpDropped.Load()
	st.UDPDropped = s.stats.udpDropped.Load()
	st.PingsAnswered = s.stats.pingsAnswered.Load()
	st.PingsDropped = s.stats.pingsDropped.Load()
	st.Prohibited = s.stats.prohibited.Load()
	st.ProhibitedDrops = s.stats.prohibitedDropped.Load()
	st.BadPackets = s.stats.badPackets.Load()
	st.Oversized = s.stats.oversized.Load()
	st.Segmented = s.stats.segmented.Load()
	gs := s.ipstack.Stats()
	st.GVisorDropped = gs.DroppedPackets.Value()
	st.TCPRetransmits = gs.TCP.Retransmits.Value()
	return st
}

// addrPort converts a gVisor address and port.
func addrPort(a tcpip.Address, port uint16) netip.AddrPort {
	ip, _ := netip.AddrFromSlice(a.AsSlice())
	return netip.AddrPortFrom(ip.Unmap(), port)
}
