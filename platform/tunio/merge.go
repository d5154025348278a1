package tunio

import (
	"bytes"
	"encoding/binary"
)

// The Write side: consecutive segments of a flow become one packet the
// kernel takes whole, described by a virtio-net header (GSO), so that its
// TCP works once per run instead of once per segment, as with a NIC's GRO.
//
// The rules are those of Linux GRO. TCP: same addresses and ports, same
// TTL/hop limit, TOS/traffic class and don't-fragment bit, no IP options
// or extension headers, no fragments; flags ACK with at most PSH besides;
// same acknowledgement number, window and TCP options; contiguous
// sequence numbers; no segment longer than the first. A PSH or a shorter
// segment ends a run. UDP (when the TUN device takes UDP GSO): the same
// IP rules, and every datagram the first one's size but the last, which
// may be shorter and ends the run. Nothing is reordered within a flow: a
// packet that cannot join its flow's run is written after that run.
//
// A run is written with one writev: the header room in front of the first
// packet's buffer holds the virtio-net header, and the later segments'
// payloads follow from their own buffers, so nothing is copied.

// maxRuns is how many flows a Write keeps a run open for; past it the
// oldest run is written to make room.
const maxRuns = 8

// maxUDPSegments bounds a UDP run, as the kernel bounds what one UDP GSO
// send may carry (UDP_MAX_SEGMENTS).
const maxUDPSegments = 64

// segment is a packet of a Write, parsed as far as the merge rules need.
type segment struct {
	frame   []byte // the virtio-net header's room and the packet
	pkt     []byte // the packet: frame[vnetHdrLen:]
	v6      bool
	proto   uint8 // protoTCP or protoUDP; 0 for any other packet
	ipLen   int
	hdrLen  int // IP and transport header length
	payload int
	seq     uint32
	flags   uint8
	merge   bool // the packet may join or start a run
}

// run is a flow's open run of segments.
type run struct {
	segs    []segment
	next    uint32 // TCP: the sequence number that extends the run
	size    int    // the merged packet's length
	flags   uint8
	closing bool // the last segment ended the run
}

// merger merges the packets of one Write and writes them. A merger is used
// by one Write at a time.
type merger struct {
	// write writes one packet to the device: the concatenation of iov,
	// whose first slice starts with the virtio-net header.
	write func(iov [][]byte) error
	// udp says whether the device takes UDP runs (TUN_F_USO4/6).
	udp bool

	runs  []*run
	spare []*run
	iov   [][]byte
}

// writePackets writes the packets at bufs[i][offset:]; offset is at least
// vnetHdrLen, room for the virtio-net header. It returns the first error,
// after writing everything it could.
func (m *merger) writePackets(bufs [][]byte, offset int) error {
	var first error
	keep := func(err error) {
		if first == nil {
			first = err
		}
	}
	for _, b := range bufs {
		s := parse(b[offset-vnetHdrLen:])
		if !s.merge || s.proto == protoUDP && !m.udp {
			keep(m.flushFlow(s))
			keep(m.writeOne(s))
			continue
		}
		m.add(s, keep)
	}
	for len(m.runs) > 0 {
		keep(m.writeRun(0))
	}
	return first
}

func (m *merger) add(s segment, keep func(error)) {
	for i, r := range m.runs {
		if !sameFlow(r.segs[0], s) {
			continue
		}
		if !r.closing && r.canTake(s) {
			r.take(s)
			return
		}
		keep(m.writeRun(i))
		break
	}
	if len(m.runs) == maxRuns {
		keep(m.writeRun(0))
	}
	var r *run
	if n := len(m.spare); n > 0 {
		r, m.spare = m.spare[n-1], m.spare[:n-1]
	} else {
		r = new(run)
	}
	*r = run{segs: append(r.segs[:0], s), next: s.seq + uint32(s.payload), size: len(s.pkt), flags: s.flags}
	r.closing = s.flags&tcpPSH != 0
	m.runs = append(m.runs, r)
}

// flushFlow writes the open run of s's flow, if s is TCP or UDP and its
// flow has one.
func (m *merger) flushFlow(s segment) error {
	if s.proto == 0 {
		return nil
	}
	for i, r := range m.runs {
		if sameFlow(r.segs[0], s) {
			return m.writeRun(i)
		}
	}
	return nil
}

// canTake reports whether s extends r.
func (r *run) canTake(s segment) bool {
	f := r.segs[0]
	if r.size+s.payload > maxPacket || s.payload > f.payload || s.hdrLen != f.hdrLen || !sameHeaders(f, s) {
		return false
	}
	if f.proto == protoUDP {
		return len(r.segs) < maxUDPSegments
	}
	return s.seq == r.next && s.flags&^tcpPSH == f.flags&^tcpPSH
}

func (r *run) take(s segment) {
	r.segs = append(r.segs, s)
	r.next += uint32(s.payload)
	r.size += s.payload
	r.flags |= s.flags
	r.closing = s.flags&tcpPSH != 0 || s.payload < r.segs[0].payload
}

// writeRun removes run i and writes it: one packet with the first
// segment's headers, fixed for the merged length and flags.
func (m *merger) writeRun(i int) error {
	r := m.runs[i]
	m.runs = append(m.runs[:i], m.runs[i+1:]...)
	defer func() {
		clear(r.segs) // drop the references to the caller's buffers
		m.spare = append(m.spare, r)
	}()
	if len(r.segs) == 1 {
		return m.writeOne(r.segs[0])
	}
	f := r.segs[0]
	p := f.pkt
	if f.v6 {
		binary.BigEndian.PutUint16(p[4:], uint16(r.size-ipv6Len))
	} else {
		binary.BigEndian.PutUint16(p[2:], uint16(r.size))
		setIPv4Checksum(p[:f.ipLen])
	}
	h := vnetHdr{
		flags:     flagNeedsCsum,
		hdrLen:    uint16(f.hdrLen),
		gsoSize:   uint16(f.payload),
		csumStart: uint16(f.ipLen),
	}
	if f.proto == protoTCP {
		p[f.ipLen+13] = r.flags
		h.gsoType, h.csumOffset = gsoTCPv4, tcpCsumOffset
		if f.v6 {
			h.gsoType = gsoTCPv6
		}
	} else {
		binary.BigEndian.PutUint16(p[f.ipLen+4:], uint16(r.size-f.ipLen))
		h.gsoType, h.csumOffset = gsoUDPL4, udpCsumOffset
	}
	// The pseudo-header sum covers the merged length; the kernel adjusts it
	// per segment should it ever split the packet.
	binary.BigEndian.PutUint16(p[f.ipLen+int(h.csumOffset):], pseudoSum(p, f.v6, f.ipLen, f.proto, r.size-f.ipLen))

	h.encode(f.frame)
	m.iov = append(m.iov[:0], f.frame)
	for _, s := range r.segs[1:] {
		m.iov = append(m.iov, s.pkt[s.hdrLen:])
	}
	err := m.write(m.iov)
	clear(m.iov)
	return err
}

// writeOne writes a packet by itself. A TCP or UDP packet goes with its
// checksum left to the kernel; any other as it is, for the kernel to check.
func (m *merger) writeOne(s segment) error {
	var h vnetHdr
	if s.proto != 0 {
		h = vnetHdr{flags: flagNeedsCsum, csumStart: uint16(s.ipLen), csumOffset: tcpCsumOffset}
		if s.proto == protoUDP {
			h.csumOffset = udpCsumOffset
		}
		binary.BigEndian.PutUint16(s.pkt[s.ipLen+int(h.csumOffset):], pseudoSum(s.pkt, s.v6, s.ipLen, s.proto, len(s.pkt)-s.ipLen))
	}
	h.encode(s.frame)
	m.iov = append(m.iov[:0], s.frame)
	err := m.write(m.iov)
	m.iov[0] = nil
	return err
}

// pseudoSum is the pseudo-header sum of a transport part of length n of
// pkt, folded and not inverted, as a packet left for the kernel to
// checksum carries it in its checksum field.
func pseudoSum(pkt []byte, v6 bool, ipLen int, proto uint8, n int) uint16 {
	var s uint64
	if v6 {
		s = sum(pkt[8:40], 0)
	} else {
		s = sum(pkt[12:20], 0)
	}
	return fold(s + uint64(proto) + uint64(n))
}

// parse parses frame: room for the virtio-net header, then a packet. A
// TCP or UDP packet whose headers are whole gets proto set (it may go with
// its checksum left to the kernel); merge says whether it may also join a
// run.
func parse(frame []byte) segment {
	p := frame[vnetHdrLen:]
	s := segment{frame: frame, pkt: p}
	switch {
	case len(p) >= ipv4Len && p[0]>>4 == 4:
		s.ipLen = int(p[0]&0xf) * 4
		if s.ipLen < ipv4Len || int(binary.BigEndian.Uint16(p[2:])) != len(p) ||
			binary.BigEndian.Uint16(p[6:])&0x3fff != 0 { // more fragments, or an offset
			return s
		}
		s.proto = p[9]
	case len(p) >= ipv6Len && p[0]>>4 == 6:
		if int(binary.BigEndian.Uint16(p[4:]))+ipv6Len != len(p) {
			return s
		}
		s.v6, s.ipLen, s.proto = true, ipv6Len, p[6]
	default:
		return s
	}
	switch s.proto {
	case protoTCP:
		if len(p) < s.ipLen+tcpLen {
			s.proto = 0
			return s
		}
		s.hdrLen = s.ipLen + int(p[s.ipLen+12]>>4)*4
		if s.hdrLen < s.ipLen+tcpLen || s.hdrLen > len(p) {
			s.proto = 0
			return s
		}
		s.seq = binary.BigEndian.Uint32(p[s.ipLen+4:])
		s.flags = p[s.ipLen+13]
		s.payload = len(p) - s.hdrLen
		s.merge = s.payload > 0 && s.flags&^tcpPSH == tcpACK
	case protoUDP:
		s.hdrLen = s.ipLen + udpLen
		if s.hdrLen > len(p) || int(binary.BigEndian.Uint16(p[s.ipLen+4:])) != len(p)-s.ipLen {
			s.proto = 0
			return s
		}
		s.payload = len(p) - s.hdrLen
		s.merge = s.payload > 0
	default:
		s.proto = 0
		return s
	}
	s.merge = s.merge && (s.v6 || s.ipLen == ipv4Len) // no IPv4 options
	return s
}

// sameFlow compares protocol, addresses and ports.
func sameFlow(a, b segment) bool {
	if a.v6 != b.v6 || a.proto != b.proto {
		return false
	}
	if a.v6 {
		if !bytes.Equal(a.pkt[8:40], b.pkt[8:40]) {
			return false
		}
	} else if !bytes.Equal(a.pkt[12:20], b.pkt[12:20]) {
		return false
	}
	return binary.BigEndian.Uint32(a.pkt[a.ipLen:]) == binary.BigEndian.Uint32(b.pkt[b.ipLen:])
}

// sameHeaders compares what must match, besides the flow and (TCP) flags
// and sequence, for two segments to merge: TOS, TTL and the don't-fragment
// bit (IPv4) or version, traffic class, flow label and hop limit (IPv6);
// and the TCP acknowledgement number, window and options.
func sameHeaders(a, b segment) bool {
	if a.v6 {
		if !bytes.Equal(a.pkt[0:4], b.pkt[0:4]) || a.pkt[7] != b.pkt[7] {
			return false
		}
	} else if a.pkt[1] != b.pkt[1] || a.pkt[8] != b.pkt[8] || a.pkt[6]&0x40 != b.pkt[6]&0x40 {
		return false
	}
	if a.proto != protoTCP {
		return true
	}
	ta, tb := a.pkt[a.ipLen:a.hdrLen], b.pkt[b.ipLen:b.hdrLen]
	return bytes.Equal(ta[8:12], tb[8:12]) && // acknowledgement number
		bytes.Equal(ta[14:16], tb[14:16]) && // window
		bytes.Equal(ta[tcpLen:], tb[tcpLen:]) // options
}
