package platform

import (
	"fmt"
	"net"
	"net/netip"
)

// DefaultGateways returns the gateways of the default routes, IPv4 before
// IPv6, sorted and without duplicates: the primary default route's and
// each interface's scoped one. These must never be tunnelled (the
// split-tunnel hard guard). A default route through an interface without
// a gateway (a tunnel's, Warren's) contributes nothing. IPv6 link-local
// gateways are returned without their zone.
func DefaultGateways() ([]netip.Addr, error) {
	rib, err := sysKernel{}.rib()
	if err != nil {
		return nil, fmt.Errorf("listing routes: %w", err)
	}
	gws, err := ribDefaultGateways(rib)
	if err != nil {
		return nil, fmt.Errorf("listing routes: %w", err)
	}
	return gws, nil
}

// LocalPrefixes returns the prefixes directly connected to this machine
// through interfaces that are up, other than loopback and the Warren
// interface iface: each address masked to its prefix. Link-local prefixes
// are left out: they cannot be routed through Warren. The result is sorted
// in the order of routes.SortPrefixes and has no duplicates; the
// LAN-overlap warning compares it with the tunnelled prefixes.
func LocalPrefixes(iface string) ([]netip.Prefix, error) {
	ifis, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("listing interfaces: %w", err)
	}
	var all []netip.Prefix
	for _, ifi := range ifis {
		if ifi.Name == iface || ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagLoopback != 0 {
			continue
		}
		ps, err := interfacePrefixes(&ifi)
		if err != nil {
			return nil, fmt.Errorf("listing addresses of %s: %w", ifi.Name, err)
		}
		all = append(all, ps...)
	}
	return connectedPrefixes(all), nil
}
