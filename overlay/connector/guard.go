package connector

import (
	"fmt"
	"net/netip"

	"github.com/warrennet/warren/routes"
)

// The destination guard: addresses the connector never dials, whatever
// the routes and the policy say. A client must not use the connector to
// reach the connector host itself (its loopback services, its own
// addresses), the cloud metadata service on link-local, or the local
// network through broadcast and multicast.

// guardedRange is a range the guard refuses, with its name.
type guardedRange struct {
	prefix netip.Prefix
	name   string
}

var guarded4 = []guardedRange{
	{netip.MustParsePrefix("0.0.0.0/8"), "this network (0.0.0.0/8), which Linux delivers to the host itself"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("255.255.255.255/32"), "limited broadcast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved (240.0.0.0/4)"},
	{routes.Overlay, "the Warren overlay range"},
}

var guarded6 = []guardedRange{
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("::ffff:0:0/96"), "IPv4-mapped"},
	{netip.MustParsePrefix("::/96"), "IPv4-compatible"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

// embedding is an IPv6 range whose addresses carry an IPv4 address that a
// translator or tunnel on the path would deliver to: the guard refuses
// such an address when the IPv4 one is refused.
type embedding struct {
	prefix netip.Prefix
	name   string
	// at lists where the IPv4 address's four bytes sit in the IPv6
	// address, one list per possible layout.
	at [][4]int
	// xor is applied to the bytes (Teredo obscures the client's address).
	xor byte
}

var embeddings = []embedding{
	// RFC 6052: the well-known NAT64 prefix is always a /96.
	{prefix: netip.MustParsePrefix("64:ff9b::/96"), name: "NAT64", at: [][4]int{{12, 13, 14, 15}}},
	// RFC 8215: the local-use prefix, as it is deployed, cut at /96. (The
	// shorter RFC 6052 layouts are not checked: the connector cannot know
	// which one a site uses, and read as one of them the zeros of a /96
	// deployment's every address embed 0.0.0.0/8.)
	{prefix: netip.MustParsePrefix("64:ff9b:1::/96"), name: "NAT64 (local-use)", at: [][4]int{{12, 13, 14, 15}}},
	// RFC 3056: 2002:AABB:CCDD::/48 is 6to4 for AA.BB.CC.DD.
	{prefix: netip.MustParsePrefix("2002::/16"), name: "6to4", at: [][4]int{{2, 3, 4, 5}}},
	// RFC 4380: Teredo carries its server's address in bytes 4-7 and the
	// client's, inverted, in bytes 12-15.
	{prefix: netip.MustParsePrefix("2001::/32"), name: "Teredo (server)", at: [][4]int{{4, 5, 6, 7}}},
	{prefix: netip.MustParsePrefix("2001::/32"), name: "Teredo (client)", at: [][4]int{{12, 13, 14, 15}}, xor: 0xff},
}

// neverServed says why the connector must never open a flow to dst, or
// returns "" when routes and policy decide: loopback, link-local,
// multicast, unspecified, this network (0.0.0.0/8), limited broadcast and
// the rest of 240.0.0.0/4, the overlay range, IPv4-mapped and
// IPv4-compatible IPv6 addresses, and the NAT64, 6to4 and Teredo forms
// of any refused IPv4 address. An address with a zone is refused.
func neverServed(dst netip.Addr) string {
	switch {
	case !dst.IsValid():
		return "not an address"
	case dst.Zone() != "":
		return "an address with a zone"
	}
	ranges := guarded6
	if dst.Is4() {
		ranges = guarded4
	}
	for _, r := range ranges {
		if r.prefix.Contains(dst) {
			return r.name
		}
	}
	for _, e := range embedded(dst) {
		if why := neverServed(e.addr); why != "" {
			return fmt.Sprintf("the %s form of %v, %s", e.form, e.addr, why)
		}
	}
	return ""
}

// embeddedAddr is an IPv4 address carried in an IPv6 one.
type embeddedAddr struct {
	addr netip.Addr
	form string
}

// embedded returns the IPv4 addresses dst carries (NAT64, 6to4, Teredo);
// none for an IPv4 address.
func embedded(dst netip.Addr) []embeddedAddr {
	if !dst.Is6() {
		return nil
	}
	b := dst.As16()
	var out []embeddedAddr
	for _, e := range embeddings {
		if !e.prefix.Contains(dst) {
			continue
		}
		for _, at := range e.at {
			v4 := netip.AddrFrom4([4]byte{b[at[0]] ^ e.xor, b[at[1]] ^ e.xor, b[at[2]] ^ e.xor, b[at[3]] ^ e.xor})
			out = append(out, embeddedAddr{v4, e.name})
		}
	}
	return out
}

// isHost reports whether dst is one of host (the connector host's own
// addresses), directly, IPv4-mapped, or in an IPv6 form that embeds one.
func isHost(host map[netip.Addr]bool, dst netip.Addr) bool {
	if host[dst.Unmap()] {
		return true
	}
	for _, e := range embedded(dst) {
		if host[e.addr] {
			return true
		}
	}
	return false
}
