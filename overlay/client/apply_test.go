package client

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/warrennet/warren/split"
)

func TestWinOverLANs(t *testing.T) {
	pp := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	gw := split.Guard{Prefix: netip.MustParsePrefix("10.1.0.1/32"), Reason: "default gateway"}
	tests := []struct {
		name     string
		routes   []split.Route
		lans     []netip.Prefix
		want     []netip.Prefix
		warnings int
	}{
		{"no overlap", []split.Route{{Prefix: netip.MustParsePrefix("192.168.0.0/24"), Connector: "office"}}, pp("10.1.0.0/24"), pp("192.168.0.0/24"), 0},
		{
			// The route equals the LAN: the halves win over the connected
			// route, less the gateway, which the guard already cut out.
			"route equals the LAN",
			[]split.Route{{Prefix: netip.MustParsePrefix("10.1.0.0/24"), Connector: "office"}}, pp("10.1.0.0/24"),
			pp("10.1.0.0/32", "10.1.0.2/31", "10.1.0.4/30", "10.1.0.8/29", "10.1.0.16/28", "10.1.0.32/27", "10.1.0.64/26", "10.1.0.128/25"), 1,
		},
		{
			"route wider than a LAN it does not hold the gateway of",
			[]split.Route{{Prefix: netip.MustParsePrefix("172.16.0.0/12"), Connector: "office"}}, pp("172.20.5.0/24"),
			pp("172.16.0.0/12", "172.20.5.0/25", "172.20.5.128/25"), 1,
		},
	}
	for _, tt := range tests {
		res := split.Compute(split.DefaultPolicy(), tt.routes, []split.Guard{gw})
		got, warnings := winOverLANs(res, tt.lans, []split.Guard{gw})
		if diff := cmp.Diff(tt.want, got, cmpopts.EquateComparable(netip.Prefix{})); diff != "" {
			t.Errorf("%s: installed (-want +got):\n%s", tt.name, diff)
		}
		if len(warnings) != tt.warnings {
			t.Errorf("%s: %d warnings %q, want %d", tt.name, len(warnings), warnings, tt.warnings)
		}
	}
}

func TestHalves(t *testing.T) {
	for _, tt := range []struct{ in, lo, hi string }{
		{"10.1.0.0/24", "10.1.0.0/25", "10.1.0.128/25"},
		{"10.0.0.0/8", "10.0.0.0/9", "10.128.0.0/9"},
		{"192.168.0.0/31", "192.168.0.0/32", "192.168.0.1/32"},
		{"fd00::/8", "fd00::/9", "fd80::/9"},
	} {
		h := halves(netip.MustParsePrefix(tt.in))
		if h[0].String() != tt.lo || h[1].String() != tt.hi {
			t.Errorf("halves(%s) = %v, want %s %s", tt.in, h, tt.lo, tt.hi)
		}
	}
}
