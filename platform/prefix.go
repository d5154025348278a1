package platform

import (
	"net"
	"net/netip"
)

// prefixOf converts n, with IPv4 as IPv4 whether the system gave 4 or 16
// bytes.
func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	ip := n.IP
	if ip4 := ip.To4(); ip4 != nil && len(n.Mask) == net.IPv4len {
		ip = ip4
	}
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, bits := n.Mask.Size()
	if bits != a.BitLen() {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, ones), true
}
