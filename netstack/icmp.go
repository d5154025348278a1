package netstack

import (
	"encoding/binary"
	"log/slog"
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// Echo to foreign addresses.
//
// A connector must not answer for a LAN host it has not heard from, and
// gVisor cannot be trusted with that: in promiscuous mode this version
// answers ICMPv6 echo requests to any address (ICMPv4 ones only to its
// own; TestPing fails if a refused ping gets a reply). So Write inspects
// each packet before gVisor sees it: an ICMP or ICMPv6 echo request whose
// destination is not one of Config.Addresses is taken out of the stream
// and handed (copied) to HandlePing in a goroutine of its own, at most
// MaxPings at once. If the handler says PingReply, the stack builds the
// echo reply itself (addresses swapped, same identifier, sequence number
// and data, fresh checksums, TTL/hop limit 64) and queues it toward Read
// without blocking; PingProhibited queues an ICMP administratively
// prohibited quoting the request (prohibit.go) instead. Requests to our
// own addresses go to gVisor, which answers them.
//
// A fragmented request to a foreign address is dropped at its first
// fragment (reassembly then times out), so gVisor never sees a whole
// foreign echo request to answer on its own.

// replyHopLimit is the TTL or hop limit of the echo replies we build.
const replyHopLimit = 64

// echoRequest is an echo request taken out of the packet stream; it owns
// its memory.
type echoRequest struct {
	src, dst netip.Addr
	tos      uint8  // IPv4 TOS or IPv6 traffic class, echoed back
	icmp     []byte // the ICMP message: header, identifier, sequence, data
	ip       []byte // the IP header (IPv4 with options; IPv6 fixed), for quote
}

// interceptPing reports whether p, an IP packet from the tunnel with at
// least a minimal IP header, was consumed here: an echo request to a
// foreign address (passed to HandlePing or dropped).
func (s *Stack) interceptPing(p []byte) bool {
	req, whole, ok := parseEchoRequest(p)
	if ok && s.local {
		// A local Stack opens flows and answers nothing else: the far
		// side may not even ping it (see NewLocal).
		s.stats.pingsDropped.Add(1)
		return true
	}
	if !ok || s.own[req.dst] {
		return false
	}
	if !whole {
		s.stats.pingsDropped.Add(1)
		return true
	}
	s.mu.Lock()
	if s.shut || s.pings >= s.cfg.MaxPings {
		shut := s.shut
		s.mu.Unlock()
		s.stats.pingsDropped.Add(1)
		if !shut {
			s.rl.pingBound.log(s.log, slog.LevelWarn, "dropping an echo request: too many pings in progress", "src", req.src, "dst", req.dst)
		}
		return true
	}
	s.pings++
	s.handlers.Add(1)
	s.mu.Unlock()
	req.icmp = append([]byte(nil), req.icmp...) // p is the caller's buffer
	req.ip = append([]byte(nil), req.ip...)
	go s.runPing(req)
	return true
}

// runPing asks the handler about one echo request and answers it.
func (s *Stack) runPing(req echoRequest) {
	defer s.handlers.Done()
	defer func() {
		s.mu.Lock()
		s.pings--
		s.mu.Unlock()
	}()
	f := Flow{Src: netip.AddrPortFrom(req.src, 0), Dst: netip.AddrPortFrom(req.dst, 0), Proto: ProtoICMP}
	payload := append([]byte(nil), req.icmp[header.ICMPv4MinimumSize:]...)
	verdict := s.cfg.Handler.HandlePing(s.ctx, f, payload)
	if s.ctx.Err() != nil {
		return
	}
	switch verdict {
	case PingReply:
	case PingProhibited:
		proto := header.ICMPv4ProtocolNumber
		if req.src.Is6() {
			proto = header.ICMPv6ProtocolNumber
		}
		s.sendProhibited(quote(req.ip, req.icmp, proto))
		return
	default:
		return
	}
	if !s.link.enqueueBytes(req.reply()) {
		s.stats.pingsDropped.Add(1)
		s.rl.pingQueue.log(s.log, slog.LevelDebug, "dropping an echo reply: outbound queue full", "src", req.dst, "dst", req.src)
		return
	}
	s.stats.pingsAnswered.Add(1)
}

// parseEchoRequest recognises an ICMPv4 or ICMPv6 echo request with a
// valid checksum. whole is false for the first fragment of a fragmented
// request (req.icmp is then incomplete). req.icmp aliases p.
func parseEchoRequest(p []byte) (req echoRequest, whole, ok bool) {
	switch p[0] >> 4 {
	case 4:
		return parseEcho4(p)
	case 6:
		return parseEcho6(p)
	}
	return echoRequest{}, false, false
}

func parseEcho4(p []byte) (req echoRequest, whole, ok bool) {
	h := header.IPv4(p)
	hlen := int(h.HeaderLength())
	total := int(h.TotalLength())
	if hlen < header.IPv4MinimumSize || total < hlen+header.ICMPv4MinimumSize || total > len(p) {
		return echoRequest{}, false, false
	}
	if h.TransportProtocol() != header.ICMPv4ProtocolNumber || h.FragmentOffset() != 0 {
		return echoRequest{}, false, false
	}
	icmp := header.ICMPv4(p[hlen:total])
	if icmp.Type() != header.ICMPv4Echo || icmp.Code() != 0 {
		return echoRequest{}, false, false
	}
	req = echoRequest{
		src:  netip.AddrFrom4(h.SourceAddress().As4()),
		dst:  netip.AddrFrom4(h.DestinationAddress().As4()),
		tos:  p[1],
		icmp: icmp,
		ip:   p[:hlen],
	}
	if h.More() {
		return req, false, true // the checksum covers fragments we do not have
	}
	if checksum.Checksum(icmp, 0) != 0xffff {
		return echoRequest{}, false, false
	}
	return req, true, true
}

func parseEcho6(p []byte) (req echoRequest, whole, ok bool) {
	h := header.IPv6(p)
	end := header.IPv6MinimumSize + int(h.PayloadLength())
	if end > len(p) {
		return echoRequest{}, false, false
	}
	p = p[:end]
	tc, _ := h.TOS()
	req = echoRequest{
		src: netip.AddrFrom16(h.SourceAddress().As16()),
		dst: netip.AddrFrom16(h.DestinationAddress().As16()),
		tos: tc,
		ip:  p[:header.IPv6MinimumSize],
	}
	// Walk the extension headers to the upper-layer header.
	next, off, fragmented := h.NextHeader(), header.IPv6MinimumSize, false
	for {
		switch tcpip.TransportProtocolNumber(next) {
		case header.ICMPv6ProtocolNumber:
			icmp := header.ICMPv6(p[off:])
			if len(icmp) < header.ICMPv6EchoMinimumSize || icmp.Type() != header.ICMPv6EchoRequest || icmp.Code() != 0 {
				return echoRequest{}, false, false
			}
			req.icmp = icmp
			if fragmented {
				return req, false, true
			}
			want := header.ICMPv6Checksum(header.ICMPv6ChecksumParams{
				Header: icmp,
				Src:    h.SourceAddress(),
				Dst:    h.DestinationAddress(),
			})
			if icmp.Checksum() != want {
				return echoRequest{}, false, false
			}
			return req, true, true
		case tcpip.TransportProtocolNumber(header.IPv6HopByHopOptionsExtHdrIdentifier),
			tcpip.TransportProtocolNumber(header.IPv6RoutingExtHdrIdentifier),
			tcpip.TransportProtocolNumber(header.IPv6DestinationOptionsExtHdrIdentifier):
			if off+8 > len(p) {
				return echoRequest{}, false, false
			}
			next, off = p[off], off+8*(int(p[off+1])+1)
		case tcpip.TransportProtocolNumber(header.IPv6FragmentExtHdrIdentifier):
			if off+8 > len(p) {
				return echoRequest{}, false, false
			}
			fragOff := binary.BigEndian.Uint16(p[off+2:]) >> 3
			if fragOff != 0 {
				return echoRequest{}, false, false // not the first fragment
			}
			next, off, fragmented = p[off], off+8, true
		default:
			return echoRequest{}, false, false
		}
		if off > len(p) {
			return echoRequest{}, false, false
		}
	}
}

// reply builds the echo reply packet for req.
func (req echoRequest) reply() []byte {
	if req.src.Is4() {
		b := make([]byte, header.IPv4MinimumSize+len(req.icmp))
		ip := header.IPv4(b)
		ip.Encode(&header.IPv4Fields{
			TOS:         req.tos,
			TotalLength: uint16(len(b)),
			TTL:         replyHopLimit,
			Protocol:    uint8(header.ICMPv4ProtocolNumber),
			SrcAddr:     tcpip.AddrFrom4(req.dst.As4()),
			DstAddr:     tcpip.AddrFrom4(req.src.As4()),
		})
		ip.SetChecksum(^ip.CalculateChecksum())
		icmp := header.ICMPv4(b[header.IPv4MinimumSize:])
		copy(icmp, req.icmp)
		icmp.SetType(header.ICMPv4EchoReply)
		icmp.SetCode(0)
		icmp.SetChecksum(0)
		icmp.SetChecksum(^checksum.Checksum(icmp, 0))
		return b
	}
	b := make([]byte, header.IPv6MinimumSize+len(req.icmp))
	src, dst := tcpip.AddrFrom16(req.dst.As16()), tcpip.AddrFrom16(req.src.As16())
	header.IPv6(b).Encode(&header.IPv6Fields{
		TrafficClass:      req.tos,
		PayloadLength:     uint16(len(req.icmp)),
		TransportProtocol: header.ICMPv6ProtocolNumber,
		HopLimit:          replyHopLimit,
		SrcAddr:           src,
		DstAddr:           dst,
	})
	icmp := header.ICMPv6(b[header.IPv6MinimumSize:])
	copy(icmp, req.icmp)
	icmp.SetType(header.ICMPv6EchoReply)
	icmp.SetCode(0)
	icmp.SetChecksum(header.ICMPv6Checksum(header.ICMPv6ChecksumParams{Header: icmp, Src: src, Dst: dst}))
	return b
}
