package routes

import (
	"fmt"
	"net/netip"
	"slices"
)

// The destination guard: addresses no connector ever opens a flow to,
// whatever the routes and the access policy say. One table drives both
// checks: the connector's on every flow (NeverServed) and the
// coordinator's on every route (CheckRoutable), so a route the
// coordinator accepts holds no address the connector refuses.
//
// A client must not use a connector to reach the connector host itself
// (its loopback services, the unspecified address Linux delivers to the
// host), the cloud metadata service on link-local, the site's network
// as a whole (broadcast, multicast), the overlay behind the connector's
// back, or a translator or tunnel on the path (NAT64, 6to4, Teredo)
// that would carry the flow on to any of those. The connector host's own
// addresses are refused too, by the connector, which alone knows them.
//
// The table covers the IANA IPv4 and IPv6 special-purpose address
// registries. What it leaves to routes and policy, and why:
//
//   - 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, fc00::/7 (private,
//     unique local), 100.64.0.0/10 outside the overlay (shared address
//     space): the LANs connectors serve.
//   - 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32,
//     3fff::/20 (documentation) and 198.18.0.0/15, 2001:2::/48
//     (benchmarking): never on the Internet, but labs and test networks
//     number real hosts from them, and nothing on a host treats them
//     specially; refusing them would protect nothing.
//   - 192.31.196.0/24, 192.175.48.0/24, 2001:4:112::/48,
//     2620:4f:8000::/48 (AS112), 192.52.193.0/24, 2001:3::/32 (AMT):
//     anycast services a site may run like any other host.
//   - The rest of 2001::/23: unicast like any other.

// GuardRange is a range of the guard's table.
type GuardRange struct {
	Prefix netip.Prefix
	// Name names the range in messages ("loopback").
	Name string
}

// guardRanges is the table: every range whose addresses a LAN host can
// never legitimately have, with the reason beside it. It is sorted at
// init (ComparePrefixes), so a prefix overlapping several is reported
// against the lowest.
var guardRanges = []GuardRange{
	// IPv4.
	// RFC 1122 "this host on this network": Linux delivers 0.0.0.0 (and
	// routes nothing else of 0.0.0.0/8) to the host itself.
	{netip.MustParsePrefix("0.0.0.0/8"), "this network"},
	// Warren's own: a client reaches other nodes over the overlay, never
	// through a connector.
	{Overlay, "the Warren overlay range"},
	// RFC 1122: the host itself.
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	// RFC 3927: on-link only; holds the cloud metadata service
	// (169.254.169.254).
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	// RFC 6890 IETF protocol assignments: the host's own DS-Lite and
	// 464XLAT tunnel ends (192.0.0.0/29), a host-local dummy (.8), the
	// PCP anycast that opens port mappings in the site's NAT (.9), TURN
	// (.10) and NAT64 discovery (.170, .171): not one is a LAN host.
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments"},
	// RFC 7526: the deprecated 6to4 relay anycast, a tunnel entry.
	{netip.MustParsePrefix("192.88.99.0/24"), "the deprecated 6to4 relay anycast"},
	// RFC 5771: reaches every member of a group on the site's network.
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	// RFC 1112: reserved, never assigned.
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved (240.0.0.0/4)"},
	// RFC 919: every host on the connector's link.
	{netip.MustParsePrefix("255.255.255.255/32"), "limited broadcast"},

	// IPv6.
	// RFC 4291: the host itself.
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	// RFC 4291 IPv4-compatible, deprecated: some stacks still hand it to
	// IPv4 (::127.0.0.1 as 127.0.0.1); no host has one.
	{netip.MustParsePrefix("::/96"), "IPv4-compatible"},
	// RFC 4291 IPv4-mapped: a socket delivers it to the IPv4 address, so
	// it is only a way around the IPv4 checks; IPv4 routes carry IPv4.
	{netip.MustParsePrefix("::ffff:0:0/96"), "IPv4-mapped"},
	// RFC 6666: discard-only, a black hole by definition.
	{netip.MustParsePrefix("100::/64"), "discard-only"},
	// RFC 9780: the dummy prefix, for a host's own use.
	{netip.MustParsePrefix("100:0:0:1::/64"), "the dummy IPv6 prefix"},
	// RFC 7723 PCP anycast (opens port mappings in the site's NAT), RFC
	// 8155 TURN and RFC 9665 DNS-SD SRP anycast (registers services in
	// the site's DNS): services of the site's network, not LAN hosts.
	{netip.MustParsePrefix("2001:1::1/128"), "the PCP anycast address"},
	{netip.MustParsePrefix("2001:1::2/127"), "the TURN and DNS-SD SRP anycast addresses"},
	// RFC 4843, 7343, 9374: ORCHID, ORCHIDv2 and drone DETs are
	// identifiers, not locators: never routed.
	{netip.MustParsePrefix("2001:10::/28"), "ORCHID (deprecated)"},
	{netip.MustParsePrefix("2001:20::/28"), "ORCHIDv2"},
	{netip.MustParsePrefix("2001:30::/28"), "drone remote ID tags"},
	// RFC 9602: SRv6 segment identifiers instruct routers; no host has
	// one.
	{netip.MustParsePrefix("5f00::/16"), "SRv6 segment identifiers"},
	// RFC 4291: on-link only.
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	// RFC 3879: deprecated site-local, still scoped by some stacks.
	{netip.MustParsePrefix("fec0::/10"), "site-local (deprecated)"},
	// RFC 4291: reaches every member of a group.
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

// Embedding is an IPv6 range whose addresses carry an IPv4 address that a
// translator or tunnel on the path would deliver to: the guard refuses
// such an address when it refuses the IPv4 one. (IPv4-mapped and
// IPv4-compatible addresses are refused whole, in the table.)
type Embedding struct {
	Prefix netip.Prefix
	// Name names the form in messages ("NAT64").
	Name string
	// At is the offset of the IPv4 address's first byte in the IPv6
	// address; its four bytes follow.
	At int
	// Xor is applied to each of the four bytes (Teredo obscures the
	// client's address).
	Xor byte
}

var embeddings = []Embedding{
	// RFC 6052: the well-known NAT64 prefix is always a /96.
	{Prefix: netip.MustParsePrefix("64:ff9b::/96"), Name: "NAT64", At: 12},
	// RFC 8215: a site takes its NAT64 prefix from the local-use /48, and
	// deploys it as a /96 as translators do by default. (The shorter RFC
	// 6052 layouts are not checked: read as one of them, the zeros of
	// a /96 deployment's every address embed 0.0.0.0, so every address
	// would be refused.)
	{Prefix: netip.MustParsePrefix("64:ff9b:1::/48"), Name: "local-use NAT64", At: 12},
	// RFC 3056: 2002:AABB:CCDD::/48 is 6to4 for AA.BB.CC.DD.
	{Prefix: netip.MustParsePrefix("2002::/16"), Name: "6to4", At: 2},
	// RFC 4380: Teredo carries its server's address in bytes 4-7 and the
	// client's, inverted, in bytes 12-15.
	{Prefix: netip.MustParsePrefix("2001::/32"), Name: "Teredo server", At: 4},
	{Prefix: netip.MustParsePrefix("2001::/32"), Name: "Teredo client", At: 12, Xor: 0xff},
}

// Extract returns the IPv4 address a carries in this form, if a is in
// e.Prefix.
func (e Embedding) Extract(a netip.Addr) (netip.Addr, bool) {
	if !a.Is6() || !e.Prefix.Contains(a.WithZone("")) {
		return netip.Addr{}, false
	}
	b := a.As16()
	return netip.AddrFrom4([4]byte{b[e.At] ^ e.Xor, b[e.At+1] ^ e.Xor, b[e.At+2] ^ e.Xor, b[e.At+3] ^ e.Xor}), true
}

// example returns an address of e.Prefix that carries v4, an IPv4
// address, with its other bits from bytes 0x5c, so that whatever another
// form reads there (a Teredo address's other end: 92.92.92.92 or
// 163.163.163.163) is an ordinary address.
func (e Embedding) example(v4 netip.Addr) netip.Addr {
	b := e.Prefix.Addr().As16()
	for i := e.Prefix.Bits(); i < 128; i++ {
		b[i/8] |= 0x5c & (0x80 >> (i % 8))
	}
	for i, x := range v4.As4() {
		b[e.At+i] = x ^ e.Xor
	}
	return netip.AddrFrom16(b)
}

// GuardTable returns a copy of the guard's ranges, IPv4 first, sorted by
// prefix.
func GuardTable() []GuardRange { return slices.Clone(guardRanges) }

// GuardEmbeddings returns a copy of the IPv6 forms that carry an IPv4
// address the guard checks.
func GuardEmbeddings() []Embedding { return slices.Clone(embeddings) }

// NeverServed says why no connector may open a flow to dst, or returns ""
// when routes and policy decide: dst is in a range of the guard's table
// (GuardTable), or carries (GuardEmbeddings) an IPv4 address that is. An
// invalid address and one with a zone are refused. The reason is a short
// phrase ("loopback", "the NAT64 form of 127.0.0.1, loopback"); the most
// specific range names it.
func NeverServed(dst netip.Addr) string {
	switch {
	case !dst.IsValid():
		return "not an address"
	case dst.Zone() != "":
		return "an address with a zone"
	}
	if r, ok := guardedBy(dst); ok {
		return r.Name
	}
	for _, e := range embeddings {
		v4, ok := e.Extract(dst)
		if !ok {
			continue
		}
		if r, ok := guardedBy(v4); ok {
			return fmt.Sprintf("the %s form of %v, %s", e.Name, v4, r.Name)
		}
	}
	return ""
}

// guardedBy returns the most specific range of the table holding a.
func guardedBy(a netip.Addr) (GuardRange, bool) {
	var best GuardRange
	found := false
	for _, r := range guardRanges {
		if r.Prefix.Contains(a) && (!found || r.Prefix.Bits() > best.Prefix.Bits()) {
			best, found = r, true
		}
	}
	return best, found
}

// EmbeddedIPv4 returns the IPv4 addresses dst carries in the forms of
// GuardEmbeddings (none for an IPv4 address), for checks the table cannot
// hold, such as a connector host's own addresses.
func EmbeddedIPv4(dst netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, e := range embeddings {
		if v4, ok := e.Extract(dst); ok {
			out = append(out, v4)
		}
	}
	return out
}

// A pattern is a set of addresses of one family given by the bits they
// fix: a holds a when a&mask == value. A prefix is a pattern; so is an
// embedded form of one (the embedding's prefix bits, plus the IPv4
// prefix's bits at the embedding's offset), which need not be a prefix
// (the Teredo client's bits follow 64 free ones).
type pattern struct {
	is4         bool
	mask, value [16]byte
	fixed       int    // bits set in mask
	what        string // for messages: "loopback (127.0.0.0/8)"
}

// patterns is the guard as patterns, for prefixes: the table's ranges
// first, then each embedding of each IPv4 range.
var patterns []pattern

func init() {
	slices.SortStableFunc(guardRanges, func(a, b GuardRange) int { return ComparePrefixes(a.Prefix, b.Prefix) })
	for _, r := range guardRanges {
		pt := prefixPattern(r.Prefix)
		pt.what = fmt.Sprintf("%s (%v)", r.Name, r.Prefix)
		patterns = append(patterns, pt)
	}
	for _, e := range embeddings {
		for _, r := range guardRanges {
			if !r.Prefix.Addr().Is4() {
				continue
			}
			pt := prefixPattern(e.Prefix)
			v4 := r.Prefix.Addr().As4()
			for i := range r.Prefix.Bits() {
				bit := e.At*8 + i
				m := byte(0x80) >> (bit % 8)
				pt.mask[bit/8] |= m
				if (v4[i/8]^e.Xor)&(0x80>>(i%8)) != 0 {
					pt.value[bit/8] |= m
				}
			}
			pt.fixed += r.Prefix.Bits()
			pt.what = fmt.Sprintf("the %s form of %s (%v)", e.Name, r.Name, r.Prefix)
			patterns = append(patterns, pt)
		}
	}
}

// prefixPattern returns p as a pattern; p must be masked.
func prefixPattern(p netip.Prefix) pattern {
	pt := pattern{is4: p.Addr().Is4(), fixed: p.Bits()}
	b := p.Addr().AsSlice()
	for i := range p.Bits() {
		pt.mask[i/8] |= 0x80 >> (i % 8)
	}
	for i := range b {
		pt.value[i] = b[i] & pt.mask[i]
	}
	return pt
}

// overlaps reports whether some address is in both pt and q; contains,
// whether every address of q is in pt.
func (pt *pattern) overlaps(q *pattern) bool {
	if pt.is4 != q.is4 {
		return false
	}
	for i := range pt.mask {
		if (pt.value[i]^q.value[i])&pt.mask[i]&q.mask[i] != 0 {
			return false
		}
	}
	return true
}

func (pt *pattern) contains(q *pattern) bool {
	if pt.is4 != q.is4 {
		return false
	}
	for i := range pt.mask {
		if pt.mask[i]&^q.mask[i] != 0 || (pt.value[i]^q.value[i])&pt.mask[i] != 0 {
			return false
		}
	}
	return true
}

// guardOverlap returns the guard pattern that refuses the masked prefix p:
// the most specific one holding all of p, or else the first one holding
// part of it; nil if none.
func guardOverlap(p netip.Prefix) *pattern {
	q := prefixPattern(p)
	var first, inside *pattern
	for i := range patterns {
		pt := &patterns[i]
		if !pt.overlaps(&q) {
			continue
		}
		if first == nil {
			first = pt
		}
		if pt.contains(&q) && (inside == nil || pt.fixed > inside.fixed) {
			inside = pt
		}
	}
	if inside != nil {
		return inside
	}
	return first
}

// GuardExample is an address, and a route, that the guard must refuse.
type GuardExample struct {
	// What names the range or form the example comes from.
	What string
	Addr netip.Addr
	// Prefix is a route holding Addr, canonical or IPv4-mapped (which
	// ParsePrefix refuses as such).
	Prefix netip.Prefix
}

// GuardExamples returns examples of everything the guard refuses, for the
// tests of the packages that enforce it, so that a range added to the
// table is tested everywhere: for every range of the table its first and
// last address and the range itself as a route; for every embedded form
// of every IPv4 range the forms of the range's first and last address,
// and the form of the whole range as a route when it is a prefix.
func GuardExamples() []GuardExample {
	var out []GuardExample
	for _, r := range guardRanges {
		what := fmt.Sprintf("%s (%v)", r.Name, r.Prefix)
		first, last := r.Prefix.Addr(), LastAddr(r.Prefix)
		out = append(out,
			GuardExample{What: what, Addr: first, Prefix: r.Prefix},
			GuardExample{What: what, Addr: last, Prefix: netip.PrefixFrom(last, last.BitLen())})
	}
	for _, e := range embeddings {
		for _, r := range guardRanges {
			if !r.Prefix.Addr().Is4() {
				continue
			}
			what := fmt.Sprintf("the %s form of %s (%v)", e.Name, r.Name, r.Prefix)
			first, last := e.example(r.Prefix.Addr()), e.example(LastAddr(r.Prefix))
			whole := netip.PrefixFrom(first, 128)
			if e.Prefix.Bits() == e.At*8 && e.Xor == 0 {
				whole = netip.PrefixFrom(first, e.At*8+r.Prefix.Bits()).Masked()
			}
			out = append(out,
				GuardExample{What: what, Addr: first, Prefix: whole},
				GuardExample{What: what, Addr: last, Prefix: netip.PrefixFrom(last, 128)})
		}
	}
	return out
}
