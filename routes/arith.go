package routes

import (
	"cmp"
	"net/netip"
	"slices"
)

// Prefix arithmetic shared by every package that orders, splits or compares
// prefixes (split, the coordinator, the client, platform): keep it here, in
// one place, rather than beside each caller.

// ComparePrefixes orders prefixes canonically: invalid first, then IPv4
// before IPv6, then by address, then by length. It suits slices.SortFunc and
// slices.BinarySearchFunc. (netip.Prefix.Compare orders by length before
// address, which is not the order Warren shows and stores.)
func ComparePrefixes(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Bits(), b.Bits())
}

// SortPrefixes sorts ps in place in the order of ComparePrefixes.
func SortPrefixes(ps []netip.Prefix) {
	slices.SortFunc(ps, ComparePrefixes)
}

// SortUnique sorts ps in place in the order of ComparePrefixes and returns
// it without duplicates. Like slices.Compact, it reuses ps's array and
// zeroes the elements it drops.
func SortUnique(ps []netip.Prefix) []netip.Prefix {
	SortPrefixes(ps)
	return slices.Compact(ps)
}

// Canonical returns p in the canonical form ParsePrefix returns: host bits
// cleared, an IPv4-mapped IPv6 prefix of at least /96 as its IPv4 form, no
// zone. ok is false for an invalid p. Where ParsePrefix and CheckRoutable
// refuse a non-canonical prefix, Canonical repairs it, for code that takes
// whatever it is given (split.Compute).
func Canonical(p netip.Prefix) (q netip.Prefix, ok bool) {
	if !p.IsValid() {
		return netip.Prefix{}, false
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), true
}

// Covers reports whether outer contains every address of inner. Both must
// be canonical; prefixes of different families never cover each other.
func Covers(outer, inner netip.Prefix) bool {
	return outer.Bits() <= inner.Bits() && outer.Contains(inner.Addr())
}

// AddrBit reports whether bit i of a is set, counting from 0 at the most
// significant bit of a's family. i must be in [0, a.BitLen()).
func AddrBit(a netip.Addr, i int) bool {
	if a.Is4() {
		b := a.As4()
		return b[i/8]&(0x80>>(i%8)) != 0
	}
	b := a.As16()
	return b[i/8]&(0x80>>(i%8)) != 0
}

// Halves returns the two prefixes one bit longer than p that make it up: lo
// has that bit clear, hi has it set, and AddrBit(x, p.Bits()) tells which
// of them holds an address x of p. p must be canonical and shorter than a
// single address (p.Bits() < p.Addr().BitLen()); Halves panics otherwise.
// The halves stay in p's family and are masked, but not always canonical:
// the upper half of ::fffe:0:0/95 is the IPv4-mapped ::ffff:0:0/96.
func Halves(p netip.Prefix) (lo, hi netip.Prefix) {
	a, i := p.Addr(), p.Bits()
	lo = netip.PrefixFrom(a, i+1)
	if a.Is4() {
		b := a.As4()
		b[i/8] |= 0x80 >> (i % 8)
		return lo, netip.PrefixFrom(netip.AddrFrom4(b), i+1)
	}
	b := a.As16()
	b[i/8] |= 0x80 >> (i % 8)
	return lo, netip.PrefixFrom(netip.AddrFrom16(b), i+1)
}

// LastAddr returns the highest address of the masked prefix p.
func LastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
