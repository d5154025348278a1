package flowtrack

import "encoding/binary"

// IP protocol numbers the filter knows.
const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
)

// flowKey names a flow as the laptop sends it: src is the laptop's
// address. Addresses are kept in 16 bytes (IPv4 in the first four) with
// v6 telling the families apart. An echo flow has the echo identifier as
// both ports, so that reversing it keeps it.
type flowKey struct {
	src, dst     [16]byte
	sport, dport uint16
	proto        uint8
	v6           bool
}

// reverse turns k into the key of the packets that answer k's.
func (k *flowKey) reverse() {
	k.src, k.dst = k.dst, k.src
	k.sport, k.dport = k.dport, k.sport
}

// fragKey names the fragments of one datagram.
type fragKey struct {
	src, dst [16]byte
	id       uint32
	proto    uint8
	v6       bool
}

// kind is what a packet is to the filter.
type kind uint8

const (
	kindNone        kind = iota // not parsable, or nothing the filter tracks
	kindFlow                    // TCP or UDP: key holds the ports
	kindEchoRequest             // ICMP echo request: key holds the identifier
	kindEchoReply               // ICMP echo reply: key holds the identifier
	kindICMPError               // ICMP error: key is the packet it is about, as that packet was sent
	kindFragment                // a fragment other than the first: only frag is set
)

// TCP flags the filter looks at.
const (
	tcpFIN = 0x01
	tcpRST = 0x04
)

// packet is what parse learns about one packet.
type packet struct {
	kind kind
	key  flowKey
	// dst is the packet's own destination (for an ICMP error, the
	// outer header's), in key form.
	dst [16]byte
	// fragmented is set on every fragment of a datagram, the first
	// included; frag names the datagram.
	fragmented bool
	frag       fragKey
	// closing is set on a TCP segment with FIN or RST.
	closing bool
}

// parse reads an IPv4 or IPv6 packet into p. A packet that is malformed
// or truncated is kindNone; so is any protocol the filter does not track.
// It never allocates.
func parse(b []byte, p *packet) {
	*p = packet{}
	if len(b) == 0 {
		return
	}
	switch b[0] >> 4 {
	case 4:
		parse4(b, p, false)
	case 6:
		parse6(b, p, false)
	}
}

// parse4 reads an IPv4 packet. embedded is set for the packet quoted in
// an ICMP error: it may be truncated after its transport header's first
// 8 bytes, and may not itself be an error or a fragment other than the
// first.
func parse4(b []byte, p *packet, embedded bool) {
	if len(b) < 20 || b[0]>>4 != 4 {
		return
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if ihl < 20 || len(b) < ihl || total < ihl {
		return
	}
	if total < len(b) {
		b = b[:total]
	} else if total > len(b) && !embedded {
		return
	}
	copy(p.key.src[:4], b[12:16])
	copy(p.key.dst[:4], b[16:20])
	p.dst = p.key.dst
	p.key.proto = b[9]
	flags := binary.BigEndian.Uint16(b[6:8])
	more, offset := flags&0x2000 != 0, flags&0x1fff
	if more || offset != 0 {
		if embedded {
			if offset != 0 {
				return
			}
		} else {
			p.fragmented = true
			p.frag = fragKey{src: p.key.src, dst: p.key.dst, id: uint32(binary.BigEndian.Uint16(b[4:6])), proto: b[9]}
			if offset != 0 {
				p.kind = kindFragment
				return
			}
		}
	}
	transport(p, b[ihl:], embedded)
}

// maxExtHeaders bounds the IPv6 extension headers parse walks.
const maxExtHeaders = 8

// parse6 reads an IPv6 packet, walking its extension headers; embedded
// is as for parse4.
func parse6(b []byte, p *packet, embedded bool) {
	if len(b) < 40 || b[0]>>4 != 6 {
		return
	}
	total := 40 + int(binary.BigEndian.Uint16(b[4:6]))
	if total < len(b) {
		b = b[:total]
	} else if total > len(b) && !embedded {
		return
	}
	copy(p.key.src[:], b[8:24])
	copy(p.key.dst[:], b[24:40])
	p.key.v6 = true
	p.dst = p.key.dst
	next, off := b[6], 40
	for range maxExtHeaders {
		switch next {
		case 0, 43, 60: // hop-by-hop, routing, destination options
			if len(b) < off+2 {
				*p = packet{}
				return
			}
			next, off = b[off], off+(int(b[off+1])+1)*8
		case 51: // authentication header
			if len(b) < off+2 {
				*p = packet{}
				return
			}
			next, off = b[off], off+(int(b[off+1])+2)*4
		case 44: // fragment
			if len(b) < off+8 {
				*p = packet{}
				return
			}
			fo := binary.BigEndian.Uint16(b[off+2:off+4]) >> 3
			more := b[off+3]&1 != 0
			id := binary.BigEndian.Uint32(b[off+4 : off+8])
			next, off = b[off], off+8
			if !more && fo == 0 {
				continue // an atomic fragment: a whole datagram
			}
			if embedded {
				if fo != 0 {
					return
				}
				continue
			}
			p.fragmented = true
			p.frag = fragKey{src: p.key.src, dst: p.key.dst, id: id, proto: next, v6: true}
			if fo != 0 {
				p.kind = kindFragment
				return
			}
		default:
			if off > len(b) {
				return
			}
			p.key.proto = next
			if p.fragmented {
				p.frag.proto = next
			}
			transport(p, b[off:], embedded)
			return
		}
	}
}

// transport reads the transport header t of p.
func transport(p *packet, t []byte, embedded bool) {
	switch p.key.proto {
	case protoTCP, protoUDP:
		min := 8
		if embedded {
			min = 4 // RFC 792 quotes 8 bytes; the ports are all we need
		} else if p.key.proto == protoTCP {
			min = 20
		}
		if len(t) < min {
			return
		}
		p.key.sport = binary.BigEndian.Uint16(t[0:2])
		p.key.dport = binary.BigEndian.Uint16(t[2:4])
		if p.key.proto == protoTCP && !embedded {
			p.closing = t[13]&(tcpFIN|tcpRST) != 0
		}
		p.kind = kindFlow
	case protoICMP:
		if !p.key.v6 {
			icmp(p, t, embedded)
		}
	case protoICMPv6:
		if p.key.v6 {
			icmp(p, t, embedded)
		}
	}
}

// icmp reads an ICMP or ICMPv6 message t of p: an echo request or reply,
// or an error quoting a packet. A quoted packet may be only an echo
// request, a TCP or a UDP packet, and an error may not be a fragment.
func icmp(p *packet, t []byte, embedded bool) {
	if len(t) < 8 {
		return
	}
	typ := t[0]
	// Echo request and reply; errors: destination unreachable, time
	// exceeded, parameter problem (and, for ICMPv6, packet too big).
	request, reply := uint8(8), uint8(0)
	isError := typ == 3 || typ == 11 || typ == 12
	if p.key.v6 {
		request, reply = 128, 129
		isError = typ >= 1 && typ <= 4
	}
	switch {
	case typ == request || typ == reply:
		if embedded && typ != request {
			return
		}
		id := binary.BigEndian.Uint16(t[4:6])
		p.key.sport, p.key.dport = id, id
		p.kind = kindEchoRequest
		if typ == reply {
			p.kind = kindEchoReply
		}
	case isError && !embedded && !p.fragmented:
		var q packet
		if p.key.v6 {
			parse6(t[8:], &q, true)
		} else {
			parse4(t[8:], &q, true)
		}
		if q.kind == kindFlow || q.kind == kindEchoRequest {
			p.kind, p.key = kindICMPError, q.key
		}
	}
}
