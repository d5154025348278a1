package netstack

import (
	"log/slog"
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// Refusing a UDP flow or an echo request with ICMP administratively
// prohibited.
//
// The stack builds the message itself, as it builds echo replies: gVisor
// sends such errors only from its iptables REJECT target, which needs the
// packet buffer while gVisor still holds it. What the message must quote
// (the offending packet's IP header and the first 8 bytes after it) is
// therefore kept when a flow starts: for UDP by handleUDPPacket, from the
// first datagram's headers, and for echo requests by interceptPing, from
// the raw packet.

// quoteLen is how much of the offending packet's payload is quoted: the
// 64 bits RFC 792 asks for, the UDP header or the echo request's header.
const quoteLen = 8

// quote returns a copy of the IP header ip (IPv4 with its options, or the
// fixed IPv6 header) followed by the first quoteLen bytes of payload,
// the header of the transport protocol proto. An IPv6 header whose next
// header is an extension header is quoted with proto as its next header,
// since the extension headers are not: the client's stack finds the
// transport header it matches sockets by right after the fixed header.
func quote(ip, payload []byte, proto tcpip.TransportProtocolNumber) []byte {
	payload = payload[:min(len(payload), quoteLen)]
	q := make([]byte, 0, len(ip)+len(payload))
	q = append(q, ip...)
	q = append(q, payload...)
	if len(q) >= header.IPv6MinimumSize && q[0]>>4 == 6 {
		q[6] = uint8(proto) // IPv6 next header
	}
	return q
}

// prohibited builds the ICMP destination unreachable, administratively
// prohibited (ICMPv4 type 3 code 13; ICMPv6 type 1 code 1) that answers
// the packet q quotes (as quote returns): from its destination to its
// source, with q as the message body. It returns nil if q does not start
// with an IP header, and, as RFC 1122 and RFC 4443 require of every ICMP
// error, for a packet sent to a multicast, broadcast or unspecified
// address or from one that is not unicast.
func prohibited(q []byte) []byte {
	if !errorAllowed(q) {
		return nil
	}
	switch {
	case len(q) >= header.IPv4MinimumSize && q[0]>>4 == 4:
		orig := header.IPv4(q)
		b := make([]byte, header.IPv4MinimumSize+header.ICMPv4MinimumSize+len(q))
		ip := header.IPv4(b)
		ip.Encode(&header.IPv4Fields{
			TotalLength: uint16(len(b)),
			TTL:         replyHopLimit,
			Protocol:    uint8(header.ICMPv4ProtocolNumber),
			SrcAddr:     orig.DestinationAddress(),
			DstAddr:     orig.SourceAddress(),
		})
		ip.SetChecksum(^ip.CalculateChecksum())
		icmp := header.ICMPv4(b[header.IPv4MinimumSize:])
		icmp.SetType(header.ICMPv4DstUnreachable)
		icmp.SetCode(header.ICMPv4AdminProhibited)
		copy(icmp[header.ICMPv4MinimumSize:], q)
		icmp.SetChecksum(^checksum.Checksum(icmp, 0))
		return b
	case len(q) >= header.IPv6MinimumSize && q[0]>>4 == 6:
		orig := header.IPv6(q)
		src, dst := orig.DestinationAddress(), orig.SourceAddress()
		body := header.ICMPv6DstUnreachableMinimumSize + len(q)
		b := make([]byte, header.IPv6MinimumSize+body)
		header.IPv6(b).Encode(&header.IPv6Fields{
			PayloadLength:     uint16(body),
			TransportProtocol: header.ICMPv6ProtocolNumber,
			HopLimit:          replyHopLimit,
			SrcAddr:           src,
			DstAddr:           dst,
		})
		icmp := header.ICMPv6(b[header.IPv6MinimumSize:])
		icmp.SetType(header.ICMPv6DstUnreachable)
		icmp.SetCode(header.ICMPv6Prohibited)
		copy(icmp[header.ICMPv6DstUnreachableMinimumSize:], q)
		icmp.SetChecksum(header.ICMPv6Checksum(header.ICMPv6ChecksumParams{Header: icmp, Src: src, Dst: dst}))
		return b
	}
	return nil
}

// errorAllowed reports whether an ICMP error may answer the packet q
// quotes: it was sent from a unicast address to a unicast address.
func errorAllowed(q []byte) bool {
	var src, dst netip.Addr
	switch {
	case len(q) >= header.IPv4MinimumSize && q[0]>>4 == 4:
		src = netip.AddrFrom4(header.IPv4(q).SourceAddress().As4())
		dst = netip.AddrFrom4(header.IPv4(q).DestinationAddress().As4())
	case len(q) >= header.IPv6MinimumSize && q[0]>>4 == 6:
		src = netip.AddrFrom16(header.IPv6(q).SourceAddress().As16())
		dst = netip.AddrFrom16(header.IPv6(q).DestinationAddress().As16())
	default:
		return false
	}
	unicast := func(a netip.Addr) bool {
		return !a.IsUnspecified() && !a.IsMulticast() && a != netip.AddrFrom4([4]byte{255, 255, 255, 255})
	}
	return unicast(src) && unicast(dst)
}

// sendProhibited queues the administratively prohibited answer to the
// packet q quotes toward the tunnel, without blocking.
func (s *Stack) sendProhibited(q []byte) {
	b := prohibited(q)
	if b == nil || s.ctx.Err() != nil {
		return
	}
	if !s.link.enqueueBytes(b) {
		s.stats.prohibitedDropped.Add(1)
		s.rl.prohibited.log(s.log, slog.LevelDebug, "dropping an icmp administratively prohibited: outbound queue full", "size", len(b))
		return
	}
	s.stats.prohibited.Add(1)
}
