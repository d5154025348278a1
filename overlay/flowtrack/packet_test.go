package flowtrack

import (
	"encoding/binary"
	"net/netip"
)

// Crafted packets for the tests. Checksums are left zero: the filter
// never reads them.

var (
	laptop4 = netip.MustParseAddr("100.96.0.2")
	lan4    = netip.MustParseAddr("192.168.0.10")
	conn4   = netip.MustParseAddr("100.96.0.1") // the connector's overlay address
	router4 = netip.MustParseAddr("192.168.0.1")
	laptop6 = netip.MustParseAddr("fd7a:115c:a1e0::2")
	lan6    = netip.MustParseAddr("2001:db8::10")
)

// ipPacket builds an IPv4 or IPv6 header (chosen by src) around payload.
func ipPacket(src, dst netip.Addr, proto uint8, payload []byte) []byte {
	if src.Is4() {
		b := make([]byte, 20, 20+len(payload))
		b[0] = 0x45
		binary.BigEndian.PutUint16(b[2:], uint16(20+len(payload)))
		binary.BigEndian.PutUint16(b[4:], 0x1234)
		b[6] = 0x40 // DF
		b[8] = 64
		b[9] = proto
		s, d := src.As4(), dst.As4()
		copy(b[12:], s[:])
		copy(b[16:], d[:])
		return append(b, payload...)
	}
	b := make([]byte, 40, 40+len(payload))
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(len(payload)))
	b[6] = proto
	b[7] = 64
	s, d := src.As16(), dst.As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	return append(b, payload...)
}

func tcpSeg(sport, dport uint16, flags byte) []byte {
	t := make([]byte, 20)
	binary.BigEndian.PutUint16(t[0:], sport)
	binary.BigEndian.PutUint16(t[2:], dport)
	t[12] = 5 << 4
	t[13] = flags
	return t
}

// TCP flags.
const (
	fin = 0x01
	syn = 0x02
	rst = 0x04
	ack = 0x10
)

func udpDgram(sport, dport uint16, data []byte) []byte {
	u := make([]byte, 8, 8+len(data))
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(data)))
	return append(u, data...)
}

func tcp(src netip.AddrPort, dst netip.AddrPort, flags byte) []byte {
	return ipPacket(src.Addr(), dst.Addr(), protoTCP, tcpSeg(src.Port(), dst.Port(), flags))
}

func udp(src netip.AddrPort, dst netip.AddrPort) []byte {
	return ipPacket(src.Addr(), dst.Addr(), protoUDP, udpDgram(src.Port(), dst.Port(), []byte("hello")))
}

// echo builds an ICMP or ICMPv6 echo request (reply false) or reply.
func echo(src, dst netip.Addr, id uint16, reply bool) []byte {
	m := make([]byte, 8, 16)
	switch {
	case src.Is4() && !reply:
		m[0] = 8
	case src.Is4() && reply:
		m[0] = 0
	case !reply:
		m[0] = 128
	default:
		m[0] = 129
	}
	binary.BigEndian.PutUint16(m[4:], id)
	binary.BigEndian.PutUint16(m[6:], 1)
	m = append(m, "pingdata"...)
	proto := uint8(protoICMP)
	if src.Is6() {
		proto = protoICMPv6
	}
	return ipPacket(src, dst, proto, m)
}

// icmpError builds an ICMP error of type typ and code from src to dst
// quoting quoted (cut to its IP header and 8 bytes, as RFC 792 does for
// IPv4; whole for IPv6).
func icmpError(src, dst netip.Addr, typ, code uint8, quoted []byte) []byte {
	if src.Is4() {
		ihl := int(quoted[0]&0x0f) * 4
		quoted = quoted[:min(len(quoted), ihl+8)]
	}
	m := append([]byte{typ, code, 0, 0, 0, 0, 0, 0}, quoted...)
	proto := uint8(protoICMP)
	if src.Is6() {
		proto = protoICMPv6
	}
	return ipPacket(src, dst, proto, m)
}

// fragment4 cuts an IPv4 packet's payload at byte cut (a multiple of 8)
// into two fragments.
func fragment4(pkt []byte, cut int) (first, second []byte) {
	hdr, payload := pkt[:20], pkt[20:]
	first = append(append([]byte{}, hdr...), payload[:cut]...)
	binary.BigEndian.PutUint16(first[2:], uint16(20+cut))
	binary.BigEndian.PutUint16(first[6:], 0x2000) // MF
	second = append(append([]byte{}, hdr...), payload[cut:]...)
	binary.BigEndian.PutUint16(second[2:], uint16(20+len(payload)-cut))
	binary.BigEndian.PutUint16(second[6:], uint16(cut/8))
	return first, second
}

// fragment6 cuts an IPv6 packet's payload at byte cut (a multiple of 8)
// into two fragments with a fragment header.
func fragment6(pkt []byte, cut int, id uint32) (first, second []byte) {
	hdr, payload := pkt[:40], pkt[40:]
	frag := func(off int, more bool, data []byte) []byte {
		b := append([]byte{}, hdr...)
		b[6] = 44
		fh := make([]byte, 8)
		fh[0] = pkt[6]
		fo := uint16(off/8) << 3
		if more {
			fo |= 1
		}
		binary.BigEndian.PutUint16(fh[2:], fo)
		binary.BigEndian.PutUint32(fh[4:], id)
		b = append(append(b, fh...), data...)
		binary.BigEndian.PutUint16(b[4:], uint16(8+len(data)))
		return b
	}
	return frag(0, true, payload[:cut]), frag(cut, false, payload[cut:])
}

// withExtHeader puts a destination-options header before an IPv6
// packet's payload.
func withExtHeader(pkt []byte) []byte {
	b := append([]byte{}, pkt[:40]...)
	b = append(b, pkt[6], 0, 1, 4, 0, 0, 0, 0) // next, len 0 (8 bytes), PadN
	b[6] = 60
	b = append(b, pkt[40:]...)
	binary.BigEndian.PutUint16(b[4:], uint16(len(b)-40))
	return b
}

func ap(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }

func parsed(b []byte) packet {
	var p packet
	parse(b, &p)
	return p
}
