//go:build linux

package platform

import (
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/warrennet/warren/routes"
)

// DefaultGateways returns the gateways of the default routes in the main
// routing table, IPv4 before IPv6, sorted and without duplicates; routes
// Warren installed are not counted. These must never be tunnelled (the
// split-tunnel hard guard). A default route through a device without a
// gateway contributes nothing. IPv6 link-local gateways are returned
// without their zone.
func DefaultGateways() ([]netip.Addr, error) {
	h, err := newHandle()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	rs, err := dump(func() ([]netlink.Route, error) {
		return h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, fmt.Errorf("listing routes: %w", err)
	}
	var gws []netip.Addr
	add := func(ip net.IP) {
		if a, ok := netip.AddrFromSlice(ip); ok {
			gws = append(gws, a.Unmap())
		}
	}
	for _, r := range rs {
		if r.Protocol == RouteProtocol {
			continue
		}
		if p, ok := routeDst(r); !ok || p.Bits() != 0 {
			continue
		}
		add(r.Gw)
		for _, nh := range r.MultiPath {
			add(nh.Gw)
		}
	}
	slices.SortFunc(gws, netip.Addr.Compare)
	return slices.Compact(gws), nil
}

// LocalPrefixes returns the prefixes directly connected to this machine
// through interfaces that are up, other than loopback and the Warren
// interface iface: each address masked to its prefix (a point-to-point
// address contributes its peer's prefix). Link-local prefixes are left out:
// they cannot be routed through Warren. The result is sorted in the order
// of routes.SortPrefixes and has no duplicates; the LAN-overlap warning
// compares it with the tunnelled prefixes.
func LocalPrefixes(iface string) ([]netip.Prefix, error) {
	h, err := newHandle()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	links, err := dump(h.LinkList)
	if err != nil {
		return nil, fmt.Errorf("listing interfaces: %w", err)
	}
	use := make(map[int]bool)
	for _, l := range links {
		a := l.Attrs()
		if a.Name != iface && a.Flags&net.FlagUp != 0 && a.Flags&net.FlagLoopback == 0 {
			use[a.Index] = true
		}
	}
	addrs, err := dump(func() ([]netlink.Addr, error) { return h.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, fmt.Errorf("listing addresses: %w", err)
	}
	var ps []netip.Prefix
	for _, a := range addrs {
		if !use[a.LinkIndex] {
			continue
		}
		n := a.IPNet
		if a.Peer != nil {
			n = a.Peer
		}
		if n == nil {
			continue
		}
		p, ok := prefixOf(n)
		if !ok || p.Addr().IsLinkLocalUnicast() || p.Addr().IsLoopback() {
			continue
		}
		ps = append(ps, p.Masked())
	}
	routes.SortPrefixes(ps)
	return slices.Compact(ps), nil
}
