package netstack

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// udpRcvBuf is the receive buffer of each UDP flow's gVisor endpoint, in
// payload bytes: about 870 datagrams of 1,200 bytes, 17 ms at 500 Mbit/s.
// It is a bound, not an allocation: only queued datagrams use memory.
const udpRcvBuf = 1 << 20

// flowKey identifies a UDP flow: the client's address and port, and the
// address and port it sent to.
type flowKey struct {
	src, dst netip.AddrPort
}

// udpFlow is one live UDP flow. gVisor demultiplexes the flow's later
// datagrams to its connected endpoint, so the forwarder only sees a flow's
// first datagram; s.udpFlows counts and reaps the flows.
type udpFlow struct {
	s   *Stack
	key flowKey
	// quote is the first datagram's IP header and UDP header, for
	// Prohibit; immutable.
	quote []byte
	ep    tcpip.Endpoint // conn's, for ReadBatch
	conn  *gonet.UDPConn
	last  atomic.Int64 // time of the last datagram either way, Unix ns
	once  sync.Once
}

// handleUDPPacket is the UDP default handler, called synchronously in
// Write for a datagram no endpoint claims: the first of a new flow. It
// does what gVisor's udp.Forwarder does, and keeps the datagram's headers
// for Prohibit. It reports every datagram handled, those it drops too, so
// that gVisor never answers one with an ICMP port unreachable.
func (s *Stack) handleUDPPacket(id stack.TransportEndpointID, pkt *stack.PacketBuffer) bool {
	q := quote(pkt.NetworkHeader().Slice(), pkt.TransportHeader().Slice(), udp.ProtocolNumber)
	s.acceptUDP(udp.NewForwarderRequest(s.ipstack, id, pkt.Clone()), q)
	return true
}

// acceptUDP opens a flow for r's datagram, whose headers q quotes, or
// drops it when the flow is being created or torn down, or the flows are
// at their bound.
func (s *Stack) acceptUDP(r *udp.ForwarderRequest, q []byte) {
	id := r.ID()
	key := flowKey{src: addrPort(id.RemoteAddress, id.RemotePort), dst: addrPort(id.LocalAddress, id.LocalPort)}

	s.mu.Lock()
	if s.shut {
		s.mu.Unlock()
		return
	}
	if _, ok := s.udpFlows[key]; ok {
		// The flow is being created or torn down; its endpoint is not
		// registered right now. Drop: UDP senders retry.
		s.mu.Unlock()
		s.stats.udpDropped.Add(1)
		return
	}
	if len(s.udpFlows) >= s.cfg.MaxUDPFlows {
		n := len(s.udpFlows)
		s.mu.Unlock()
		s.stats.udpDropped.Add(1)
		s.rl.udpBound.log(s.log, slog.LevelWarn, "dropping a udp datagram: too many udp flows", "src", key.src, "dst", key.dst, "flows", n)
		return
	}
	s.udpFlows[key] = nil // reserve the slot while the endpoint is created
	s.mu.Unlock()

	var wq waiter.Queue
	ep, err := r.CreateEndpoint(&wq) // queues this first datagram on ep
	if err != nil {
		s.mu.Lock()
		delete(s.udpFlows, key)
		s.mu.Unlock()
		s.stats.udpDropped.Add(1)
		s.rl.udpEndpoint.log(s.log, slog.LevelDebug, "cannot create a udp endpoint", "src", key.src, "dst", key.dst, "err", convertErr(err))
		return
	}
	// gVisor's default, 212 KiB, holds about 170 full-size datagrams:
	// a few milliseconds of a fast flow, less than the handler may be
	// kept from reading on a busy machine, and UDP has no back-pressure.
	ep.SocketOptions().SetReceiveBufferSize(udpRcvBuf, true)
	fl := &udpFlow{s: s, key: key, quote: q, ep: ep, conn: gonet.NewUDPConn(&wq, ep)}
	fl.touch()

	s.mu.Lock()
	if s.shut {
		delete(s.udpFlows, key)
		s.mu.Unlock()
		fl.conn.Close()
		return
	}
	s.udpFlows[key] = fl
	s.handlers.Add(1)
	s.mu.Unlock()
	go s.runUDPFlow(fl)
}

// runUDPFlow runs the handler for one flow and closes the flow after it.
func (s *Stack) runUDPFlow(fl *udpFlow) {
	defer s.handlers.Done()
	defer fl.close()
	f := Flow{Src: fl.key.src, Dst: fl.key.dst, Proto: ProtoUDP}
	s.cfg.Handler.HandleUDP(s.ctx, f, &udpConn{fl: fl})
}

func (fl *udpFlow) touch() { fl.last.Store(time.Now().UnixNano()) }

// idle reports how long the flow has been idle at now.
func (fl *udpFlow) idle(now time.Time) time.Duration {
	return now.Sub(time.Unix(0, fl.last.Load()))
}

// close closes the flow's endpoint (waking a blocked Read) and forgets
// the flow, so its next datagram opens a new one. Idempotent.
func (fl *udpFlow) close() { fl.once.Do(fl.doClose) }

// doClose is close's body; it runs once, in fl.once.
func (fl *udpFlow) doClose() {
	fl.conn.Close()
	s := fl.s
	s.mu.Lock()
	if s.udpFlows[fl.key] == fl {
		delete(s.udpFlows, fl.key)
	}
	s.mu.Unlock()
}

// reapUDP closes flows idle for longer than UDPIdleTimeout, checking four
// times per timeout: a flow lives between 1 and 1.25 timeouts after its
// last datagram. It runs until Close.
func (s *Stack) reapUDP() {
	defer s.loops.Done()
	t := time.NewTicker(max(s.cfg.UDPIdleTimeout/4, time.Millisecond))
	defer t.Stop()
	var idle []*udpFlow
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-t.C:
			idle = idle[:0]
			s.mu.Lock()
			for _, fl := range s.udpFlows {
				if fl != nil && fl.idle(now) >= s.cfg.UDPIdleTimeout {
					idle = append(idle, fl)
				}
			}
			s.mu.Unlock()
			for _, fl := range idle {
				fl.close()
			}
			clear(idle)
		}
	}
}

// udpConn is the net.Conn a UDP handler gets: gVisor's connected UDP conn
// that records activity for the idle timeout and reports the flow's own
// addresses.
type udpConn struct {
	fl *udpFlow
}

var (
	_ net.Conn    = (*udpConn)(nil)
	_ BatchReader = (*udpConn)(nil)
	_ Prohibiter  = (*udpConn)(nil)
)

// Read reads the flow's next datagram from the client.
func (c *udpConn) Read(b []byte) (int, error) {
	n, err := c.fl.conn.Read(b)
	if err == nil {
		c.fl.touch()
	}
	return n, err
}

// ReadBatch reads the flow's next datagram into bufs[0], blocking as Read
// does, then as many more as are already queued, up to len(bufs), and
// returns how many it read; sizes[i] is the length of the one in bufs[i]
// (truncated to it, as Read does). A handler that forwards a fast flow
// can then send them on with one system call.
func (c *udpConn) ReadBatch(bufs [][]byte, sizes []int) (int, error) {
	if len(bufs) == 0 {
		return 0, nil
	}
	n, err := c.Read(bufs[0])
	if err != nil {
		return 0, err
	}
	sizes[0] = n
	read := 1
	for read < len(bufs) {
		w := tcpip.SliceWriter(bufs[read])
		res, err := c.fl.ep.Read(&w, tcpip.ReadOptions{})
		if err != nil {
			break // empty (or closed: the next call says so)
		}
		sizes[read] = res.Count
		read++
	}
	return read, nil
}

// Write sends one datagram to the client, from the flow's destination.
func (c *udpConn) Write(b []byte) (int, error) {
	n, err := c.fl.conn.Write(b)
	if err == nil {
		c.fl.touch()
	}
	return n, err
}

// Close ends the flow.
func (c *udpConn) Close() error {
	c.fl.close()
	return nil
}

// Prohibit implements Prohibiter.
func (c *udpConn) Prohibit() {
	first := false
	c.fl.once.Do(func() {
		first = true
		c.fl.doClose()
	})
	if first {
		c.fl.s.sendProhibited(c.fl.quote)
	}
}

// LocalAddr is the flow's destination: the address the client sent to.
func (c *udpConn) LocalAddr() net.Addr { return net.UDPAddrFromAddrPort(c.fl.key.dst) }

// RemoteAddr is the client's address.
func (c *udpConn) RemoteAddr() net.Addr { return net.UDPAddrFromAddrPort(c.fl.key.src) }

func (c *udpConn) SetDeadline(t time.Time) error      { return c.fl.conn.SetDeadline(t) }
func (c *udpConn) SetReadDeadline(t time.Time) error  { return c.fl.conn.SetReadDeadline(t) }
func (c *udpConn) SetWriteDeadline(t time.Time) error { return c.fl.conn.SetWriteDeadline(t) }
