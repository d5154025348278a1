package netstack

import (
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// outboundQueueLen is how many packets gVisor can have queued toward Read
// before its writers block. Tailscale uses 512 and grew its test link to
// 4096 after drops collapsed throughput; with back-pressure instead of
// drops the depth only has to cover a burst between two Reads.
const outboundQueueLen = 1024

// link is the gVisor link endpoint behind the Stack: a point-to-point link
// with no link header and no neighbour resolution, which takes TCP
// segmentation offload packets (gso.go). Packets gVisor writes go to a
// bounded queue that Read drains; packets Write receives are delivered to
// the attached dispatcher, through GRO (inbound).
//
// A full queue blocks gVisor's writer (back-pressure) instead of dropping:
// a drop looks like loss to gVisor's TCP, which then shrinks its window
// and waits for a retransmission timeout, while blocking only slows the
// sender to the rate the tunnel drains (perf-anchors §2.2). close unblocks
// every writer.
type link struct {
	mtu uint32

	queue chan *stack.PacketBuffer // outbound, toward Read
	done  chan struct{}            // closed by close
	once  sync.Once

	// dispatcher is set by Attach and cleared when the NIC goes away.
	dispatcher atomic.Pointer[stack.NetworkDispatcher]

	inbounds sync.Pool // *inbound, for Write
}

var _ stack.LinkEndpoint = (*link)(nil)

func newLink(mtu int) *link {
	return &link{
		mtu:      uint32(mtu),
		queue:    make(chan *stack.PacketBuffer, outboundQueueLen),
		done:     make(chan struct{}),
		inbounds: sync.Pool{New: newInbound},
	}
}

// close makes writers fail instead of block and wakes Read; it releases
// the packets still queued. Idempotent.
func (l *link) close() {
	l.once.Do(func() { close(l.done) })
	l.drain()
}

// drain releases queued packets without blocking.
func (l *link) drain() {
	for {
		select {
		case pkt := <-l.queue:
			pkt.DecRef()
		default:
			return
		}
	}
}

// next returns the next outbound packet, blocking until there is one; nil
// once the link is closed.
func (l *link) next() *stack.PacketBuffer {
	select {
	case pkt := <-l.queue:
		return pkt
	case <-l.done:
		return nil
	}
}

// tryNext returns the next outbound packet or nil without blocking.
func (l *link) tryNext() *stack.PacketBuffer {
	select {
	case pkt := <-l.queue:
		return pkt
	default:
		return nil
	}
}

// enqueue queues pkt (taking a reference) toward Read; if block is false
// and the queue is full it drops pkt and returns false.
func (l *link) enqueue(pkt *stack.PacketBuffer, block bool) bool {
	select {
	case <-l.done:
		return false
	default:
	}
	pkt.IncRef()
	if !block {
		select {
		case l.queue <- pkt:
			return true
		default:
			pkt.DecRef()
			return false
		}
	}
	select {
	case l.queue <- pkt:
		return true
	case <-l.done:
		pkt.DecRef()
		return false
	}
}

// enqueueBytes queues a packet built outside gVisor (an echo reply)
// without blocking; false if the queue is full or closed.
func (l *link) enqueueBytes(b []byte) bool {
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(b)})
	defer pkt.DecRef()
	return l.enqueue(pkt, false)
}

// inbound carries the packets of one Write into gVisor, coalescing
// consecutive segments of a TCP flow first (gro.go): the MSS-sized
// segments of a bulk upload that arrive in one Write reach gVisor's TCP
// as a few segments of up to 64 KiB, so its per-segment work (IP and TCP
// parsing, demultiplexing, the endpoint's segment queue and processor
// wake-up, ACK generation) and its per-segment receive-buffer overhead
// are paid once per run instead of once per packet. Everything held is
// delivered by finishInbound, before Write returns, so coalescing adds no
// latency and never reorders a flow.
//
// An inbound is used by one Write at a time; the link pools them, since
// wireguard-go calls Write from one goroutine per peer.
type inbound struct {
	c coalescer
}

// startInbound returns an inbound for one Write, or nil if no dispatcher
// is attached.
func (l *link) startInbound() *inbound {
	d := l.dispatcher.Load()
	if d == nil {
		return nil
	}
	in := l.inbounds.Get().(*inbound)
	in.c.deliver = (*d).DeliverNetworkPacket
	return in
}

// add hands a packet received from the tunnel to the coalescer, which
// copies it before Write returns.
func (in *inbound) add(proto tcpip.NetworkProtocolNumber, b []byte) {
	in.c.add(proto, b)
}

// finishInbound delivers everything in still holds and returns it to the
// pool.
func (l *link) finishInbound(in *inbound) {
	in.c.flush()
	in.c.deliver = nil
	l.inbounds.Put(in)
}

func newInbound() any { return new(inbound) }

// WritePackets implements stack.LinkWriter. It blocks while the queue is
// full (see link) and fails once the link is closed.
func (l *link) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	n := 0
	for _, pkt := range pkts.AsSlice() {
		if !l.enqueue(pkt, true) {
			if n == 0 {
				return 0, &tcpip.ErrClosedForSend{}
			}
			break
		}
		n++
	}
	return n, nil
}

// Attach implements stack.NetworkLinkEndpoint.
func (l *link) Attach(d stack.NetworkDispatcher) {
	if d == nil {
		l.dispatcher.Store(nil)
		return
	}
	l.dispatcher.Store(&d)
}

// IsAttached implements stack.NetworkLinkEndpoint.
func (l *link) IsAttached() bool { return l.dispatcher.Load() != nil }

// MTU implements stack.NetworkLinkEndpoint.
func (l *link) MTU() uint32 { return l.mtu }

// SetMTU implements stack.NetworkLinkEndpoint. The tunnel MTU is fixed at
// New, so this is ignored.
func (l *link) SetMTU(uint32) {}

// MaxHeaderLength implements stack.NetworkLinkEndpoint: no link header.
func (*link) MaxHeaderLength() uint16 { return 0 }

// LinkAddress implements stack.NetworkLinkEndpoint: no link address.
func (*link) LinkAddress() tcpip.LinkAddress { return "" }

// SetLinkAddress implements stack.NetworkLinkEndpoint.
func (*link) SetLinkAddress(tcpip.LinkAddress) {}

// Capabilities implements stack.NetworkLinkEndpoint.
//
// RX checksum offload tells gVisor not to verify inbound checksums: every
// packet Write receives came out of a WireGuard session, whose Poly1305
// tag already proves it is the packet the peer's stack built, checksums
// included. On transmit gVisor computes every checksum itself (no TX
// offload), except TCP's on offload packets, which Read completes when it
// segments them.
func (*link) Capabilities() stack.LinkEndpointCapabilities {
	return stack.CapabilityRXChecksumOffload
}

// Wait implements stack.NetworkLinkEndpoint: the link owns no goroutines.
func (*link) Wait() {}

// ARPHardwareType implements stack.NetworkLinkEndpoint.
func (*link) ARPHardwareType() header.ARPHardwareType { return header.ARPHardwareNone }

// AddHeader implements stack.NetworkLinkEndpoint: no link header.
func (*link) AddHeader(*stack.PacketBuffer) {}

// ParseHeader implements stack.NetworkLinkEndpoint: no link header.
func (*link) ParseHeader(*stack.PacketBuffer) bool { return true }

// Close implements stack.NetworkLinkEndpoint; called when the NIC is
// removed.
func (l *link) Close() { l.close() }

// SetOnCloseAction implements stack.NetworkLinkEndpoint.
func (*link) SetOnCloseAction(func()) {}
