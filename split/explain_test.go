package split

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestExplain(t *testing.T) {
	office := Route{Prefix: pfx("192.168.0.0/24"), Connector: "office"}
	lab := Route{Prefix: pfx("192.168.1.0/24"), Connector: "lab"}
	printers := Entry{Prefix: pfx("192.168.0.128/25"), Comment: "printers"}
	builtin := Entry{Prefix: pfx("192.168.0.0/16"), Comment: "private network, RFC 1918", Builtin: true}
	labInclude := Entry{Prefix: pfx("192.168.1.0/24"), Comment: "lab"}
	coord := Guard{Prefix: pfx("198.51.100.10/32"), Reason: "coordinator address"}
	gateway := Guard{Prefix: pfx("192.168.0.1/32"), Reason: "default gateway"}
	routes := []Route{office, lab}
	guards := []Guard{coord, gateway}
	include := Policy{Mode: ModeInclude, Include: []Entry{labInclude}}
	tests := []struct {
		name   string
		policy Policy
		ip     string
		want   Explanation
	}{{
		name: "routed address is tunnelled", policy: DefaultPolicy(), ip: "192.168.0.10",
		want: Explanation{Tunnelled: true, Route: &office, Entry: &builtin,
			Reason: "192.168.0.10 is tunnelled: route 192.168.0.0/24 via office; carved out of builtin exclude 192.168.0.0/16 (private network, RFC 1918)"},
	}, {
		name: "admin exclude leaves the rest of the route", policy: withExcludes(DefaultPolicy(), printers), ip: "192.168.0.10",
		want: Explanation{Tunnelled: true, Route: &office, Entry: &builtin,
			Reason: "192.168.0.10 is tunnelled: route 192.168.0.0/24 via office; carved out of builtin exclude 192.168.0.0/16 (private network, RFC 1918)"},
	}, {
		name: "admin exclude bypasses", policy: withExcludes(DefaultPolicy(), printers), ip: "192.168.0.200",
		want: Explanation{Route: &office, Entry: &printers,
			Reason: "192.168.0.200 is bypassed: excluded by 192.168.0.128/25 (printers), which shadows route 192.168.0.0/24 via office"},
	}, {
		name: "include mode, not included", policy: include, ip: "192.168.0.10",
		want: Explanation{Route: &office, Reason: "192.168.0.10 is bypassed: not in include list (route 192.168.0.0/24 via office)"},
	}, {
		name: "include mode, included", policy: include, ip: "192.168.1.20",
		want: Explanation{Tunnelled: true, Route: &lab, Entry: &labInclude,
			Reason: "192.168.1.20 is tunnelled: route 192.168.1.0/24 via lab; included by 192.168.1.0/24 (lab)"},
	}, {
		name: "guard inside a route", policy: DefaultPolicy(), ip: "192.168.0.1",
		want: Explanation{Route: &office, Guard: &gateway, Reason: "192.168.0.1 is not tunnelled: default gateway 192.168.0.1/32 is never tunnelled"},
	}, {
		name: "guard outside routes", policy: include, ip: "198.51.100.10",
		want: Explanation{Guard: &coord, Reason: "198.51.100.10 is not tunnelled: coordinator address 198.51.100.10/32 is never tunnelled"},
	}, {
		name: "no route", policy: DefaultPolicy(), ip: "8.8.8.8",
		want: Explanation{Reason: "8.8.8.8 is not tunnelled: no route covers it"},
	}, {
		name: "IPv4-mapped reads as IPv4", policy: DefaultPolicy(), ip: "::ffff:192.168.1.5",
		want: Explanation{Tunnelled: true, Route: &lab, Entry: &builtin,
			Reason: "192.168.1.5 is tunnelled: route 192.168.1.0/24 via lab; carved out of builtin exclude 192.168.0.0/16 (private network, RFC 1918)"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ip := netip.MustParseAddr(tt.ip)
			tt.want.IP = ip.Unmap()
			got := Explain(tt.policy, routes, guards, ip)
			if diff := cmp.Diff(tt.want, got, cmpOpts); diff != "" {
				t.Errorf("Explain(%v) mismatch (-want +got):\n%s", ip, diff)
			}
		})
	}
	t.Run("invalid address", func(t *testing.T) {
		got := Explain(DefaultPolicy(), routes, guards, netip.Addr{})
		if want := (Explanation{Reason: "invalid address"}); !cmp.Equal(want, got, cmpOpts) {
			t.Errorf("Explain(invalid) = %+v, want %+v", got, want)
		}
	})
}
