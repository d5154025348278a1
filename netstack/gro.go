package netstack

import (
	"bytes"
	"encoding/binary"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// Receive offload from the tunnel.
//
// One Write from wireguard-go carries up to a batch of decrypted packets,
// most of them consecutive MSS-sized segments of the same few TCP flows.
// The coalescer merges each run of such segments into one packet of up to
// 64 KiB, built in one contiguous buffer, and hands gVisor that: its TCP
// then does its per-segment work once per run, and the payload sits in one
// view that the proxy reads out in one copy. gVisor's own GRO (stack/gro)
// merges as well, but it chains one pooled buffer per packet: on a
// connector's upload, allocating those buffers and packet buffers,
// merging their views and later reading across dozens of views cost more
// CPU than gVisor's TCP itself.
//
// The rules are those of Linux and gVisor GRO: same addresses, ports,
// TTL/hop limit and TOS/traffic class, no IP options or extension
// headers, no fragments; flags ACK with at most PSH besides; same
// acknowledgement number, window and TCP options (timestamps included);
// contiguous sequence numbers; no segment larger than the first. A PSH or
// a shorter segment ends a run. Nothing is reordered within a flow: a
// packet that cannot join its flow's run is delivered after that run.

// maxRuns is how many flows the coalescer keeps a run open for within one
// Write; past it the oldest run is delivered to make room.
const maxRuns = 8

// maxMerged bounds a merged packet: IPv4's total length, and IPv6's
// payload length plus its header (gVisor takes either).
const maxMerged = 1<<16 - 1

// groSegment is a TCP packet that may join a run: the parsed fields the
// rules compare.
type groSegment struct {
	pkt     []byte
	v6      bool
	ipLen   int // IP header length
	hdrLen  int // IP and TCP header length
	payload int
	seq     uint32
	flags   header.TCPFlags
}

// run is a flow's open run: the packets to merge, all still in the
// caller's buffers.
type run struct {
	pkts    [][]byte
	first   groSegment // the first packet's fields
	next    uint32     // the sequence number that extends the run
	size    int        // the merged packet's length
	flags   header.TCPFlags
	closing bool // the last segment ended the run (PSH or short)
}

// coalescer merges the TCP segments of one Write. The packets it holds
// belong to the caller until flush returns.
type coalescer struct {
	runs    []*run
	spare   []*run // runs to reuse
	deliver func(tcpip.NetworkProtocolNumber, *stack.PacketBuffer)
}

// add takes one packet of a Write; its IP version was checked.
func (c *coalescer) add(proto tcpip.NetworkProtocolNumber, p []byte) {
	s, ok := parseGROSegment(p)
	if !ok {
		c.flushFlow(p) // a TCP packet of an open run's flow goes after it
		c.deliverBytes(proto, p)
		return
	}
	for i, r := range c.runs {
		if !sameFlow(r.first, s) {
			continue
		}
		if !r.closing && r.canTake(s) {
			r.take(s)
			return
		}
		c.deliverRun(i)
		break
	}
	if len(c.runs) == maxRuns {
		c.deliverRun(0)
	}
	c.start(s)
}

// flush delivers every open run, oldest first.
func (c *coalescer) flush() {
	for len(c.runs) > 0 {
		c.deliverRun(0)
	}
}

// flushFlow delivers the open run of p's flow, if p is TCP and has one.
func (c *coalescer) flushFlow(p []byte) {
	s, ok := parseGROFlow(p)
	if !ok {
		return
	}
	for i, r := range c.runs {
		if sameFlow(r.first, s) {
			c.deliverRun(i)
			return
		}
	}
}

func (c *coalescer) start(s groSegment) {
	var r *run
	if n := len(c.spare); n > 0 {
		r, c.spare = c.spare[n-1], c.spare[:n-1]
	} else {
		r = new(run)
	}
	*r = run{pkts: append(r.pkts[:0], s.pkt), first: s, next: s.seq + uint32(s.payload), size: len(s.pkt), flags: s.flags}
	r.closing = s.flags&header.TCPFlagPsh != 0
	c.runs = append(c.runs, r)
}

// canTake reports whether s extends r.
func (r *run) canTake(s groSegment) bool {
	f := r.first
	return s.seq == r.next &&
		s.payload <= f.payload &&
		r.size+s.payload <= maxMerged &&
		s.hdrLen == f.hdrLen &&
		s.flags&^header.TCPFlagPsh == f.flags&^header.TCPFlagPsh &&
		sameHeaders(f, s)
}

func (r *run) take(s groSegment) {
	r.pkts = append(r.pkts, s.pkt)
	r.next += uint32(s.payload)
	r.size += s.payload
	r.flags |= s.flags
	r.closing = s.flags&header.TCPFlagPsh != 0 || s.payload < r.first.payload
}

// deliverRun removes run i and hands its packet to gVisor.
func (c *coalescer) deliverRun(i int) {
	r := c.runs[i]
	c.runs = append(c.runs[:i], c.runs[i+1:]...)
	proto := header.IPv4ProtocolNumber
	if r.first.v6 {
		proto = header.IPv6ProtocolNumber
	}
	if len(r.pkts) == 1 {
		c.deliverBytes(proto, r.pkts[0])
	} else {
		c.deliverBuffer(proto, r.merge())
	}
	clear(r.pkts) // drop the references to the caller's buffers
	c.spare = append(c.spare, r)
}

// merge builds the run's packet: the first packet's headers, fixed for
// the new length and flags, in a view of their own, then every payload in
// one view. The headers are apart because gVisor copies a view on write
// when its chunk is shared, and its IP layer holds a reference to the
// header's view while it parses the rest: in one view with the payload,
// that copied the whole 64 KiB run a second time.
func (r *run) merge() buffer.Buffer {
	f := r.first
	hv := buffer.NewViewWithData(f.pkt[:f.hdrLen])
	h := hv.AsSlice()
	if f.v6 {
		header.IPv6(h).SetPayloadLength(uint16(r.size - header.IPv6MinimumSize))
	} else {
		ip := header.IPv4(h)
		ip.SetTotalLength(uint16(r.size))
		ip.SetChecksum(0)
		ip.SetChecksum(^ip.CalculateChecksum())
	}
	// The TCP checksum is left as the first segment's: the packet is
	// marked as checked (link Capabilities), as each segment was when it
	// came out of its WireGuard session.
	header.TCP(h[f.ipLen:]).SetFlags(uint8(r.flags))

	pv := buffer.NewView(r.size - f.hdrLen)
	for _, p := range r.pkts {
		pv.Write(p[f.hdrLen:])
	}
	b := buffer.MakeWithView(hv)
	b.Append(pv)
	return b
}

func (c *coalescer) deliverBytes(proto tcpip.NetworkProtocolNumber, p []byte) {
	c.deliverBuffer(proto, buffer.MakeWithData(p))
}

func (c *coalescer) deliverBuffer(proto tcpip.NetworkProtocolNumber, b buffer.Buffer) {
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: b})
	pkt.NetworkProtocolNumber = proto
	// What came out of a WireGuard session needs no checksum check (see
	// Capabilities).
	pkt.RXChecksumValidated = true
	c.deliver(proto, pkt)
	pkt.DecRef()
}

// parseGROFlow parses p far enough to name its TCP flow: a segment with the
// addresses, ports and lengths set, or false if p is not TCP.
func parseGROFlow(p []byte) (groSegment, bool) {
	s := groSegment{pkt: p}
	switch p[0] >> 4 {
	case 4:
		if len(p) < header.IPv4MinimumSize {
			return s, false
		}
		ip := header.IPv4(p)
		s.ipLen = int(ip.HeaderLength())
		if ip.Protocol() != uint8(header.TCPProtocolNumber) || s.ipLen < header.IPv4MinimumSize {
			return s, false
		}
	case 6:
		if len(p) < header.IPv6MinimumSize || header.IPv6(p).NextHeader() != uint8(header.TCPProtocolNumber) {
			return s, false
		}
		s.v6, s.ipLen = true, header.IPv6MinimumSize
	default:
		return s, false
	}
	if len(p) < s.ipLen+header.TCPMinimumSize {
		return s, false
	}
	return s, true
}

// parseGROSegment parses p as a TCP segment that may join a run: false for
// anything else, which goes to gVisor as it came (and gVisor validates it).
func parseGROSegment(p []byte) (groSegment, bool) {
	s, ok := parseGROFlow(p)
	if !ok {
		return s, false
	}
	if s.v6 {
		if int(header.IPv6(p).PayloadLength())+header.IPv6MinimumSize != len(p) {
			return s, false
		}
	} else {
		ip := header.IPv4(p)
		if s.ipLen != header.IPv4MinimumSize || int(ip.TotalLength()) != len(p) ||
			ip.Flags()&header.IPv4FlagMoreFragments != 0 || ip.FragmentOffset() != 0 {
			return s, false
		}
	}
	tcp := header.TCP(p[s.ipLen:])
	off := int(tcp.DataOffset())
	if off < header.TCPMinimumSize || s.ipLen+off > len(p) {
		return s, false
	}
	s.hdrLen = s.ipLen + off
	s.payload = len(p) - s.hdrLen
	s.seq = tcp.SequenceNumber()
	s.flags = tcp.Flags()
	if s.payload == 0 || s.flags&^header.TCPFlagPsh != header.TCPFlagAck {
		return s, false
	}
	return s, true
}

// sameFlow compares addresses and ports.
func sameFlow(a, b groSegment) bool {
	if a.v6 != b.v6 {
		return false
	}
	var addrs []byte // source and destination, in both versions' headers
	if a.v6 {
		addrs = a.pkt[8:40]
		if !bytes.Equal(addrs, b.pkt[8:40]) {
			return false
		}
	} else {
		addrs = a.pkt[12:20]
		if !bytes.Equal(addrs, b.pkt[12:20]) {
			return false
		}
	}
	return binary.BigEndian.Uint32(a.pkt[a.ipLen:]) == binary.BigEndian.Uint32(b.pkt[b.ipLen:])
}

// sameHeaders compares what must match, besides flow, flags and
// sequence, for two segments of a flow to merge: TTL and TOS (IPv4) or
// the version, traffic class and flow label word and hop limit (IPv6),
// and the TCP acknowledgement number, window and options.
func sameHeaders(a, b groSegment) bool {
	if a.v6 {
		if !bytes.Equal(a.pkt[0:4], b.pkt[0:4]) || a.pkt[7] != b.pkt[7] {
			return false
		}
	} else if a.pkt[1] != b.pkt[1] || a.pkt[8] != b.pkt[8] {
		return false
	}
	ta, tb := a.pkt[a.ipLen:a.hdrLen], b.pkt[b.ipLen:b.hdrLen]
	return bytes.Equal(ta[8:12], tb[8:12]) && // acknowledgement number
		bytes.Equal(ta[14:16], tb[14:16]) && // window
		bytes.Equal(ta[header.TCPMinimumSize:], tb[header.TCPMinimumSize:]) // options
}
