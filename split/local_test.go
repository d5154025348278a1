package split

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestComputeLocal(t *testing.T) {
	pp := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, pfx(s))
		}
		return out
	}
	tunnelWins := func(route, connector, lan string) string {
		return "route " + route + " via " + connector + " overlaps this machine's LAN " + lan + ": the tunnel wins (warren set --lan-wins lets the LAN win)"
	}
	lanWins := func(route, connector, lan string) string {
		return "route " + route + " via " + connector + " overlaps this machine's LAN " + lan + ": the LAN wins (lan-wins is set)"
	}
	gw := Guard{Prefix: pfx("10.1.0.1/32"), Reason: "default gateway"}
	office := func(p string) Route { return Route{Prefix: pfx(p), Connector: "office"} }
	tests := []struct {
		name     string
		routes   []Route
		guards   []Guard
		lans     []netip.Prefix
		lanWins  bool
		want     []netip.Prefix
		warnings []string
	}{{
		name:   "no overlap",
		routes: []Route{office("192.168.0.0/24")}, guards: []Guard{gw}, lans: pp("10.1.0.0/24"),
		want: pp("192.168.0.0/24"),
	}, {
		// The gateway guard already cut the route into pieces more
		// specific than the LAN: they win over the connected route, and
		// the gateway stays local.
		name:   "route equals the LAN",
		routes: []Route{office("10.1.0.0/24")}, guards: []Guard{gw}, lans: pp("10.1.0.0/24"),
		want:     pp("10.1.0.0/32", "10.1.0.2/31", "10.1.0.4/30", "10.1.0.8/29", "10.1.0.16/28", "10.1.0.32/27", "10.1.0.64/26", "10.1.0.128/25"),
		warnings: []string{tunnelWins("10.1.0.0/24", "office", "10.1.0.0/24")},
	}, {
		name:   "route covering a LAN adds the LAN's halves",
		routes: []Route{office("172.16.0.0/12")}, guards: []Guard{gw}, lans: pp("172.20.5.0/24"),
		want:     pp("172.16.0.0/12", "172.20.5.0/25", "172.20.5.128/25"),
		warnings: []string{tunnelWins("172.16.0.0/12", "office", "172.20.5.0/24")},
	}, {
		name:   "route inside a LAN is more specific already",
		routes: []Route{office("10.1.0.128/25")}, lans: pp("10.1.0.0/24"),
		want:     pp("10.1.0.128/25"),
		warnings: []string{tunnelWins("10.1.0.128/25", "office", "10.1.0.0/24")},
	}, {
		// A point-to-point peer's /32 cannot be split: it keeps its
		// address.
		name:   "a single-address LAN has no halves",
		routes: []Route{office("10.64.0.0/16")}, lans: pp("10.64.64.64/32"),
		want:     pp("10.64.0.0/16"),
		warnings: []string{tunnelWins("10.64.0.0/16", "office", "10.64.64.64/32")},
	}, {
		name:   "a piece of two routes warns for each",
		routes: []Route{office("10.1.0.0/25"), office("10.1.0.128/25")}, lans: pp("10.1.0.0/24"),
		want: pp("10.1.0.0/24", "10.1.0.0/25", "10.1.0.128/25"),
		warnings: []string{
			tunnelWins("10.1.0.0/25", "office", "10.1.0.0/24"),
			tunnelWins("10.1.0.128/25", "office", "10.1.0.0/24"),
		},
	}, {
		name:   "two connectors, IPv4 and IPv6 LANs",
		routes: []Route{{Prefix: pfx("fd00:1::/48"), Connector: "lab"}, office("10.0.0.0/8")},
		lans:   pp("10.9.0.0/16", "fd00:1:0:2::/64", "192.168.1.0/24"),
		want:   pp("10.0.0.0/8", "10.9.0.0/17", "10.9.128.0/17", "fd00:1::/48", "fd00:1:0:2::/65", "fd00:1:0:2:8000::/65"),
		warnings: []string{
			tunnelWins("10.0.0.0/8", "office", "10.9.0.0/16"),
			tunnelWins("fd00:1::/48", "lab", "fd00:1:0:2::/64"),
		},
	}, {
		name:   "LANs are canonicalized",
		routes: []Route{office("10.0.0.0/8")}, lans: []netip.Prefix{netip.PrefixFrom(netip.MustParseAddr("::ffff:10.9.0.7"), 112), {}},
		want:     pp("10.0.0.0/8", "10.9.0.0/17", "10.9.128.0/17"),
		warnings: []string{tunnelWins("10.0.0.0/8", "office", "10.9.0.0/16")},
	}, {
		name:   "the LAN wins: it is a guard",
		routes: []Route{office("10.1.0.0/23")}, lans: pp("10.1.0.0/24"), lanWins: true,
		want:     pp("10.1.1.0/24"),
		warnings: []string{lanWins("10.1.0.0/23", "office", "10.1.0.0/24")},
	}, {
		// The gateway guard splits the bypassed part of the route in
		// nine: still one warning, naming the route.
		name:   "the LAN wins around its gateway",
		routes: []Route{office("10.1.0.0/23"), office("10.1.0.0/24")}, guards: []Guard{gw}, lans: pp("10.1.0.0/24"), lanWins: true,
		want: pp("10.1.1.0/24"),
		warnings: []string{
			lanWins("10.1.0.0/24", "office", "10.1.0.0/24"),
		},
	}, {
		name:   "the LAN wins, but overlaps nothing",
		routes: []Route{office("192.168.0.0/24")}, guards: []Guard{gw}, lans: pp("10.1.0.0/24"), lanWins: true,
		want: pp("192.168.0.0/24"),
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := DefaultPolicy()
			got := ComputeLocal(p, tt.routes, tt.guards, tt.lans, tt.lanWins)
			if diff := cmp.Diff(tt.want, got.Install, cmpOpts, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Install (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.warnings, got.Warnings, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Warnings (-want +got):\n%s", diff)
			}
			checkLocal(t, p, tt.routes, tt.guards, tt.lans, tt.lanWins, got)
		})
	}
}
