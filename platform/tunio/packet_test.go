package tunio

import (
	"encoding/binary"
	"net/netip"
)

// Packets for the tests, built with valid IP and transport checksums.

// room is the header room the tests leave before each packet, as
// wireguard-go does (its transport header).
const room = 16

type pkt struct {
	v6       bool
	proto    uint8 // protoTCP, protoUDP, or another protocol (no transport header built)
	src, dst netip.Addr
	sport    uint16
	dport    uint16
	id       uint16 // IPv4
	ttl      uint8
	tos      uint8
	frag     uint16 // IPv4 flags and fragment offset word
	seq, ack uint32
	flags    uint8
	window   uint16
	opts     []byte // TCP options, a multiple of 4 bytes
	payload  []byte
}

var (
	src4 = netip.MustParseAddr("100.96.0.2")
	dst4 = netip.MustParseAddr("192.168.0.10")
	src6 = netip.MustParseAddr("fd7a:115c:a1e0::2")
	dst6 = netip.MustParseAddr("fd00:1::10")
)

func tcp4(sport uint16, seq uint32, flags uint8, payload []byte) pkt {
	return pkt{proto: protoTCP, src: src4, dst: dst4, sport: sport, dport: 22, ttl: 64, frag: 0x4000,
		seq: seq, ack: 7, flags: flags, window: 512, opts: tsOpt(1), payload: payload}
}

func tcp6(sport uint16, seq uint32, flags uint8, payload []byte) pkt {
	p := tcp4(sport, seq, flags, payload)
	p.v6, p.src, p.dst = true, src6, dst6
	return p
}

func udp4(sport uint16, payload []byte) pkt {
	return pkt{proto: protoUDP, src: src4, dst: dst4, sport: sport, dport: 53, ttl: 64, payload: payload}
}

func udp6(sport uint16, payload []byte) pkt {
	p := udp4(sport, payload)
	p.v6, p.src, p.dst = true, src6, dst6
	return p
}

// tsOpt is a TCP timestamp option (two NOPs first), the option every
// Linux segment carries.
func tsOpt(tsval uint32) []byte {
	b := []byte{1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[4:], tsval)
	return b
}

func fill(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

func (p pkt) transportLen() int {
	switch p.proto {
	case protoTCP:
		return tcpLen + len(p.opts)
	case protoUDP:
		return udpLen
	}
	return 0
}

// bytes builds the packet.
func (p pkt) bytes() []byte {
	ipLen := ipv4Len
	if p.v6 {
		ipLen = ipv6Len
	}
	tl := p.transportLen()
	b := make([]byte, ipLen+tl+len(p.payload))
	if p.v6 {
		b[0] = 0x60 | p.tos>>4
		b[1] = p.tos << 4
		binary.BigEndian.PutUint16(b[4:], uint16(len(b)-ipv6Len))
		b[6], b[7] = p.proto, p.ttl
		copy(b[8:], p.src.AsSlice())
		copy(b[24:], p.dst.AsSlice())
	} else {
		b[0], b[1] = 0x45, p.tos
		binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
		binary.BigEndian.PutUint16(b[4:], p.id)
		binary.BigEndian.PutUint16(b[6:], p.frag)
		b[8], b[9] = p.ttl, p.proto
		copy(b[12:], p.src.AsSlice())
		copy(b[16:], p.dst.AsSlice())
		setIPv4Checksum(b[:ipv4Len])
	}
	t := b[ipLen:]
	switch p.proto {
	case protoTCP:
		binary.BigEndian.PutUint16(t[0:], p.sport)
		binary.BigEndian.PutUint16(t[2:], p.dport)
		binary.BigEndian.PutUint32(t[4:], p.seq)
		binary.BigEndian.PutUint32(t[8:], p.ack)
		t[12] = byte(tl/4) << 4
		t[13] = p.flags
		binary.BigEndian.PutUint16(t[14:], p.window)
		copy(t[tcpLen:], p.opts)
	case protoUDP:
		binary.BigEndian.PutUint16(t[0:], p.sport)
		binary.BigEndian.PutUint16(t[2:], p.dport)
		binary.BigEndian.PutUint16(t[4:], uint16(len(t)))
	}
	copy(t[tl:], p.payload)
	if p.proto == protoTCP || p.proto == protoUDP {
		setTransportChecksum(b, p.v6, ipLen, p.proto)
	}
	return b
}

func csumOffset(proto uint8) int {
	if proto == protoUDP {
		return udpCsumOffset
	}
	return tcpCsumOffset
}

// setTransportChecksum computes b's full transport checksum.
func setTransportChecksum(b []byte, v6 bool, ipLen int, proto uint8) {
	at := ipLen + csumOffset(proto)
	b[at], b[at+1] = 0, 0
	binary.BigEndian.PutUint16(b[at:], pseudoSum(b, v6, ipLen, proto, len(b)-ipLen))
	binary.BigEndian.PutUint16(b[at:], ^fold(sum(b[ipLen:], 0)))
}

// transportValid reports whether b's transport checksum is right.
func transportValid(b []byte, v6 bool, ipLen int, proto uint8) bool {
	s := uint64(pseudoSum(b, v6, ipLen, proto, len(b)-ipLen))
	return fold(sum(b[ipLen:], s)) == 0xffff
}

// ipv4Valid reports whether the IPv4 header h has the right checksum.
func ipv4Valid(h []byte) bool { return fold(sum(h, 0)) == 0xffff }

// inBuffers puts packets in buffers of 64 KiB with room in front, as
// wireguard-go hands them to a tun.Device.
func inBuffers(pkts ...[]byte) [][]byte {
	bufs := make([][]byte, len(pkts))
	for i, p := range pkts {
		b := make([]byte, room, room+maxPacket)
		bufs[i] = append(b, p...)
	}
	return bufs
}
