package split

import (
	"cmp"
	"net/netip"
	"slices"
)

// comparePrefixes orders prefixes canonically: IPv4 before IPv6, then by
// address, then by length.
func comparePrefixes(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Bits(), b.Bits())
}

// normalize returns p in canonical form: host bits cleared, IPv4-mapped
// IPv6 prefixes of at least /96 as IPv4. ok is false for an invalid p.
func normalize(p netip.Prefix) (q netip.Prefix, ok bool) {
	if !p.IsValid() {
		return netip.Prefix{}, false
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), true
}

// contains reports whether outer contains all of inner. Both are canonical.
func contains(outer, inner netip.Prefix) bool {
	return outer.Bits() <= inner.Bits() && outer.Contains(inner.Addr())
}

// addrBit reports bit i of a, counting from the most significant bit of
// its family.
func addrBit(a netip.Addr, i int) bool {
	if a.Is4() {
		b := a.As4()
		return b[i/8]&(0x80>>(i%8)) != 0
	}
	b := a.As16()
	return b[i/8]&(0x80>>(i%8)) != 0
}

// halves returns the two children of p, which must be shorter than a
// single address.
func halves(p netip.Prefix) (lo, hi netip.Prefix) {
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

// sortPrefixes returns ps sorted canonically, without duplicates.
func sortPrefixes(ps []netip.Prefix) []netip.Prefix {
	slices.SortFunc(ps, comparePrefixes)
	return slices.Compact(ps)
}
