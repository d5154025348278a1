package connector

import (
	"net/netip"

	"github.com/warrennet/warren/routes"
)

// The destination guard is routes.NeverServed: one table, shared with the
// coordinator's route validation, of addresses the connector never dials
// whatever the routes and the policy say. The connector adds the one
// check the table cannot hold: its host's own addresses, served only
// through a route that allows them (--allow-connector-host).

// isHost reports whether dst is one of host (the connector host's own
// addresses), directly, IPv4-mapped, or in an IPv6 form that embeds one
// (routes.EmbeddedIPv4).
func isHost(host map[netip.Addr]bool, dst netip.Addr) bool {
	if host[dst.Unmap().WithZone("")] {
		return true
	}
	for _, v4 := range routes.EmbeddedIPv4(dst) {
		if host[v4] {
			return true
		}
	}
	return false
}
