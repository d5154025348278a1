package platform

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// This file encodes and decodes the few routing-socket layouts the darwin
// Router needs (<net/route.h>, <net/if_dl.h>, <netinet/in.h> as on macOS,
// the same on arm64 and amd64). It is pure and untagged so that it is
// tested on Linux: golang.org/x/net/route would do this work, but it
// compiles only on the BSDs, so the darwin plan could not be tested
// without a Mac. Its constants are macOS's values, not the host's: AF_INET6
// is 30 here. Integers are little-endian, as on both Apple CPUs.

// rt_msghdr: version, message types, flags, address bits, size.
const (
	rtmVersion = 5
	rtmAdd     = 0x1
	rtmDelete  = 0x2
	rtmGet     = 0x4

	rtfUp        = 0x1
	rtfGateway   = 0x2
	rtfHost      = 0x4
	rtfStatic    = 0x800
	rtfProto1    = 0x8000
	rtfWasCloned = 0x20000

	rtaDst     = 0x1
	rtaGateway = 0x2
	rtaNetmask = 0x4
	rtaxMax    = 8 // RTA_DST … RTA_BRD: the sockaddrs a message may carry

	sizeofRtMsghdr = 92 // 36 bytes of header, then struct rt_metrics (14 uint32)
)

// Address families and sockaddr sizes.
const (
	afInet  = 2
	afLink  = 18
	afInet6 = 30

	sizeofSockaddrIn  = 16
	sizeofSockaddrIn6 = 28
	sizeofSockaddrDL  = 20 // with the 12 bytes of sdl_data the header declares
)

// warrenRouteFlags are the flags of every route Warren adds: a static,
// interface route (no RTF_GATEWAY: its gateway is the utun's link
// address) marked RTF_PROTO1, which is how Warren recognises its routes.
const warrenRouteFlags = rtfUp | rtfStatic | rtfProto1

// errShortMessage: a routing message ends before what it declares.
var errShortMessage = errors.New("routing message too short")

// rtEntry is one route of a routing message, as far as Warren reads it.
type rtEntry struct {
	Type  uint8
	Index int // rtm_index: the interface the route goes out of
	Flags uint32
	Dst   netip.Prefix
	// The gateway is an IP address (GatewayAddr) or an interface's link
	// address (GatewayLink, its index), or neither.
	GatewayAddr netip.Addr
	GatewayLink int
}

// owned reports whether e is a route Warren installed through the
// interface with this index: static, marked RTF_PROTO1, its gateway the
// interface itself. A route the kernel cloned from one of Warren's
// inherits RTF_PROTO1 but not RTF_STATIC, and is not Warren's to delete.
func (e rtEntry) owned(index int) bool {
	return e.Flags&(rtfStatic|rtfProto1) == rtfStatic|rtfProto1 && e.Flags&rtfWasCloned == 0 &&
		e.Index == index && e.GatewayLink == index && !e.GatewayAddr.IsValid()
}

// roundupSockaddr is the space a sockaddr of length l takes in a routing
// message: a multiple of 4, and 4 for an empty one.
func roundupSockaddr(l int) int {
	if l == 0 {
		return 4
	}
	return (l + 3) &^ 3
}

// marshalRouteMsg encodes an RTM_ADD or RTM_DELETE of Warren's route to p
// through the interface (index, name): destination, the interface's link
// address as gateway, and the netmask; a host route (a full-length p)
// carries RTF_HOST instead of a netmask.
func marshalRouteMsg(typ uint8, seq int32, p netip.Prefix, index int, name string) []byte {
	flags := uint32(warrenRouteFlags)
	addrs := uint32(rtaDst | rtaGateway)
	host := p.IsSingleIP()
	if host {
		flags |= rtfHost
	} else {
		addrs |= rtaNetmask
	}
	b := make([]byte, sizeofRtMsghdr, 256)
	b[2] = rtmVersion
	b[3] = typ
	binary.LittleEndian.PutUint16(b[4:], uint16(index))
	binary.LittleEndian.PutUint32(b[8:], flags)
	binary.LittleEndian.PutUint32(b[12:], addrs)
	binary.LittleEndian.PutUint32(b[20:], uint32(seq))
	b = appendSockaddrInet(b, p.Addr())
	b = appendSockaddrDL(b, index, name)
	if !host {
		b = appendSockaddrInet(b, maskOf(p))
	}
	binary.LittleEndian.PutUint16(b[0:], uint16(len(b)))
	return b
}

// appendSockaddrInet appends a as a sockaddr_in or sockaddr_in6.
func appendSockaddrInet(b []byte, a netip.Addr) []byte {
	if a.Is4() {
		var sa [sizeofSockaddrIn]byte
		sa[0], sa[1] = sizeofSockaddrIn, afInet
		a4 := a.As4()
		copy(sa[4:], a4[:])
		return append(b, sa[:]...)
	}
	var sa [roundupSockaddrIn6]byte
	sa[0], sa[1] = sizeofSockaddrIn6, afInet6
	a16 := a.As16()
	copy(sa[8:], a16[:])
	return append(b, sa[:]...)
}

const roundupSockaddrIn6 = (sizeofSockaddrIn6 + 3) &^ 3

// appendSockaddrDL appends the link address of the interface (index,
// name): what `route add -interface NAME` sends as the gateway.
func appendSockaddrDL(b []byte, index int, name string) []byte {
	l := max(sizeofSockaddrDL, 8+len(name))
	sa := make([]byte, roundupSockaddr(l))
	sa[0], sa[1] = byte(l), afLink
	binary.LittleEndian.PutUint16(sa[2:], uint16(index))
	sa[5] = byte(len(name)) // sdl_nlen; sdl_type, sdl_alen and sdl_slen stay 0
	copy(sa[8:], name)
	return append(b, sa...)
}

// maskOf is p's netmask as an address of p's family.
func maskOf(p netip.Prefix) netip.Addr {
	var m [16]byte
	for i := range p.Bits() {
		m[i/8] |= 0x80 >> (i % 8)
	}
	if p.Addr().Is4() {
		return netip.AddrFrom4([4]byte(m[:4]))
	}
	return netip.AddrFrom16(m)
}

// parseRIB decodes the routes of a routing table dump (sysctl
// NET_RT_DUMP: RTM_GET messages one after the other). Messages of another
// version or type, and routes whose destination is not IPv4 or IPv6 (the
// link-layer entries), are skipped.
func parseRIB(b []byte) ([]rtEntry, error) {
	var es []rtEntry
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, errShortMessage
		}
		l := int(binary.LittleEndian.Uint16(b))
		if l < 4 || l > len(b) {
			return nil, fmt.Errorf("routing message of %d bytes in %d: %w", l, len(b), errShortMessage)
		}
		m := b[:l]
		b = b[l:]
		if m[2] != rtmVersion || m[3] != rtmGet {
			continue
		}
		e, ok, err := parseRouteMsg(m)
		if err != nil {
			return nil, err
		}
		if ok {
			es = append(es, e)
		}
	}
	return es, nil
}

// parseRouteMsg decodes one routing message. ok is false for a route
// Warren has no use for (its destination is not an IP prefix).
func parseRouteMsg(m []byte) (e rtEntry, ok bool, err error) {
	if len(m) < sizeofRtMsghdr {
		return rtEntry{}, false, errShortMessage
	}
	e.Type = m[3]
	e.Index = int(binary.LittleEndian.Uint16(m[4:]))
	e.Flags = binary.LittleEndian.Uint32(m[8:])
	addrs := binary.LittleEndian.Uint32(m[12:])
	// Each sockaddr, cut to its sa_len, and its family: read from the
	// second byte even when sa_len is shorter (the kernel writes a
	// zero-length "::" with its family set).
	var sas [rtaxMax][]byte
	var fams [rtaxMax]byte
	b := m[sizeofRtMsghdr:]
	for i := range rtaxMax {
		if addrs&(1<<i) == 0 {
			continue
		}
		if len(b) < 1 {
			return rtEntry{}, false, errShortMessage
		}
		l := int(b[0])
		if len(b) < l {
			return rtEntry{}, false, errShortMessage
		}
		sas[i] = b[:l]
		if len(b) >= 2 {
			fams[i] = b[1]
		}
		b = b[min(roundupSockaddr(l), len(b)):]
	}
	dst, ok := sockaddrAddr(sas[0], fams[0])
	if !ok {
		return rtEntry{}, false, nil
	}
	bits := dst.BitLen()
	if addrs&rtaNetmask != 0 && e.Flags&rtfHost == 0 {
		if bits, ok = maskBits(sas[2], dst.Is4()); !ok {
			return rtEntry{}, false, nil
		}
	}
	e.Dst = netip.PrefixFrom(dst, bits).Masked()
	if fams[1] == afLink && len(sas[1]) >= 4 {
		e.GatewayLink = int(binary.LittleEndian.Uint16(sas[1][2:]))
	} else if a, ok := sockaddrAddr(sas[1], fams[1]); ok {
		e.GatewayAddr = a
	}
	return e, true, nil
}

// sockaddrAddr returns the address of a sockaddr_in or sockaddr_in6 of
// the family (which sa may be too short to hold). A sockaddr shorter than
// its family's holds the address's leading bytes, the rest zero; one that
// is empty is the unspecified address. An IPv6 link-local address loses
// the scope the kernel embeds in its second 16-bit word, as
// DefaultGateways returns link-local gateways without a zone.
func sockaddrAddr(sa []byte, family byte) (netip.Addr, bool) {
	switch family {
	case afInet:
		var a [4]byte
		if len(sa) > 4 {
			copy(a[:], sa[4:min(len(sa), 8)])
		}
		return netip.AddrFrom4(a), true
	case afInet6:
		var a [16]byte
		if len(sa) > 8 {
			copy(a[:], sa[8:min(len(sa), 24)])
		}
		if ip := netip.AddrFrom16(a); ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() {
			a[2], a[3] = 0, 0
		}
		return netip.AddrFrom16(a), true
	}
	return netip.Addr{}, false
}

// maskBits returns the prefix length of a netmask in the kernel's form:
// its sa_len counts only up to the last non-zero byte (0 for /0), its
// family may be unset, and the mask's bytes sit where the address would.
// A mask that is not contiguous is refused.
func maskBits(sa []byte, v4 bool) (int, bool) {
	off, size := 8, 16
	if v4 {
		off, size = 4, 4
	}
	var m [16]byte
	if len(sa) > off {
		copy(m[:size], sa[off:min(len(sa), off+size)])
	}
	bits := 0
	for bits < size*8 && m[bits/8]&(0x80>>(bits%8)) != 0 {
		bits++
	}
	for i := bits; i < size*8; i++ {
		if m[i/8]&(0x80>>(i%8)) != 0 {
			return 0, false
		}
	}
	return bits, true
}
