package split

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

const (
	rfc1918_10  = "; carved out of builtin exclude 10.0.0.0/8 (private network, RFC 1918)"
	rfc1918_192 = "; carved out of builtin exclude 192.168.0.0/16 (private network, RFC 1918)"
)

// tun is a tunnelled decision made of the territory of routes.
func tun(prefix, connector, reason string, routes ...string) Decision {
	d := Decision{Prefix: pfx(prefix), Connector: connector, Reason: reason}
	for _, r := range routes {
		d.Routes = append(d.Routes, pfx(r))
	}
	if len(routes) == 1 {
		d.Route = d.Routes[0]
	}
	return d
}

// byp is a bypassed decision of route.
func byp(prefix, route, connector, reason string) Decision {
	return Decision{Prefix: pfx(prefix), Route: pfx(route), Routes: []netip.Prefix{pfx(route)}, Connector: connector, Reason: reason}
}

func withExcludes(p Policy, es ...Entry) Policy {
	p.Exclude = append(p.Exclude, es...)
	return p
}

func TestCompute(t *testing.T) {
	office := Route{Prefix: pfx("192.168.0.0/24"), Connector: "office"}
	lab := Route{Prefix: pfx("192.168.1.0/24"), Connector: "lab"}
	printers := Entry{Prefix: pfx("192.168.0.128/25"), Comment: "printers"}
	tests := []struct {
		name   string
		policy Policy
		routes []Route
		guards []Guard
		want   Result
	}{{
		name:   "fresh routes are tunnelled with the default policy",
		policy: DefaultPolicy(),
		routes: []Route{lab, office},
		want: Result{Tunnel: []Decision{
			tun("192.168.0.0/24", "office", "route 192.168.0.0/24 via office"+rfc1918_192, "192.168.0.0/24"),
			tun("192.168.1.0/24", "lab", "route 192.168.1.0/24 via lab"+rfc1918_192, "192.168.1.0/24"),
		}},
	}, {
		name:   "adjacent routes of one connector merge",
		policy: DefaultPolicy(),
		routes: []Route{office, {Prefix: pfx("192.168.1.0/24"), Connector: "office"}},
		want: Result{Tunnel: []Decision{
			tun("192.168.0.0/23", "office", "routes 192.168.0.0/24, 192.168.1.0/24 via office"+rfc1918_192, "192.168.0.0/24", "192.168.1.0/24"),
		}},
	}, {
		name:   "admin exclude shadows part of a route",
		policy: withExcludes(DefaultPolicy(), printers),
		routes: []Route{office, lab},
		want: Result{
			Tunnel: []Decision{
				tun("192.168.0.0/25", "office", "route 192.168.0.0/24 via office"+rfc1918_192, "192.168.0.0/24"),
				tun("192.168.1.0/24", "lab", "route 192.168.1.0/24 via lab"+rfc1918_192, "192.168.1.0/24"),
			},
			Bypass:   []Decision{byp("192.168.0.128/25", "192.168.0.0/24", "office", "excluded by 192.168.0.128/25 (printers)")},
			Warnings: []string{"exclude 192.168.0.128/25 (printers) shadows part of route 192.168.0.0/24 via office"},
		},
	}, {
		name:   "admin exclude shadows a whole route",
		policy: Policy{Mode: ModeExclude, Exclude: []Entry{{Prefix: pfx("192.168.0.0/16"), Comment: "home lan"}}},
		routes: []Route{office},
		want: Result{
			Bypass:   []Decision{byp("192.168.0.0/24", "192.168.0.0/24", "office", "excluded by 192.168.0.0/16 (home lan)")},
			Warnings: []string{"exclude 192.168.0.0/16 (home lan) shadows route 192.168.0.0/24 via office"},
		},
	}, {
		name: "most specific exclude is the cause",
		policy: Policy{Mode: ModeExclude, Exclude: []Entry{
			{Prefix: pfx("10.0.0.0/25"), Comment: "b"}, {Prefix: pfx("10.0.0.0/16"), Comment: "a"},
		}},
		routes: []Route{{Prefix: pfx("10.0.0.0/24"), Connector: "r"}},
		want: Result{
			Bypass: []Decision{
				byp("10.0.0.0/25", "10.0.0.0/24", "r", "excluded by 10.0.0.0/25 (b)"),
				byp("10.0.0.128/25", "10.0.0.0/24", "r", "excluded by 10.0.0.0/16 (a)"),
			},
			Warnings: []string{
				"exclude 10.0.0.0/16 (a) shadows route 10.0.0.0/24 via r",
				"exclude 10.0.0.0/25 (b) shadows part of route 10.0.0.0/24 via r",
			},
		},
	}, {
		name:   "include mode tunnels only the include list",
		policy: Policy{Mode: ModeInclude, Include: []Entry{{Prefix: pfx("192.168.1.0/24"), Comment: "lab"}}},
		routes: []Route{office, lab},
		want: Result{
			Tunnel: []Decision{tun("192.168.1.0/24", "lab", "route 192.168.1.0/24 via lab; included by 192.168.1.0/24 (lab)", "192.168.1.0/24")},
			Bypass: []Decision{byp("192.168.0.0/24", "192.168.0.0/24", "office", "not in include list")},
		},
	}, {
		name: "include with no route behind it warns",
		policy: Policy{Mode: ModeInclude, Include: []Entry{
			{Prefix: pfx("172.20.0.0/16"), Comment: "old vpn"}, {Prefix: pfx("192.168.1.0/24")},
		}},
		routes: []Route{lab},
		want: Result{
			Tunnel:   []Decision{tun("192.168.1.0/24", "lab", "route 192.168.1.0/24 via lab; included by 192.168.1.0/24", "192.168.1.0/24")},
			Warnings: []string{"include 172.20.0.0/16 (old vpn) has no route behind it, so it tunnels nothing"},
		},
	}, {
		name:   "include is intersected with routes",
		policy: Policy{Mode: ModeInclude, Include: []Entry{{Prefix: pfx("10.0.0.0/8"), Comment: "corp"}, {Prefix: pfx("10.9.0.0/25")}}},
		routes: []Route{{Prefix: pfx("10.9.0.0/24"), Connector: "a"}},
		want: Result{
			Tunnel: []Decision{tun("10.9.0.0/24", "a", "route 10.9.0.0/24 via a; included by 10.0.0.0/8 (corp), 10.9.0.0/25", "10.9.0.0/24")},
		},
	}, {
		name: "reasons name at most three entries",
		policy: Policy{Mode: ModeInclude, Include: []Entry{
			{Prefix: pfx("10.9.0.0/26")}, {Prefix: pfx("10.9.0.64/26")}, {Prefix: pfx("10.9.0.128/26")},
			{Prefix: pfx("10.9.0.192/26")}, {Prefix: pfx("10.9.0.0/24")},
		}},
		routes: []Route{{Prefix: pfx("10.9.0.0/24"), Connector: "a"}},
		want: Result{
			Tunnel: []Decision{tun("10.9.0.0/24", "a", "route 10.9.0.0/24 via a; included by 10.9.0.0/26, 10.9.0.64/26, 10.9.0.128/26 and 2 more", "10.9.0.0/24")},
		},
	}, {
		name:   "guards win in exclude mode",
		policy: DefaultPolicy(),
		routes: []Route{{Prefix: pfx("198.51.100.0/30"), Connector: "dc"}},
		guards: []Guard{{Prefix: pfx("198.51.100.1/32"), Reason: "relay address"}, {Prefix: pfx("203.0.113.1/32"), Reason: "coordinator address"}},
		want: Result{
			Tunnel: []Decision{
				tun("198.51.100.0/32", "dc", "route 198.51.100.0/30 via dc", "198.51.100.0/30"),
				tun("198.51.100.2/31", "dc", "route 198.51.100.0/30 via dc", "198.51.100.0/30"),
			},
			Bypass: []Decision{byp("198.51.100.1/32", "198.51.100.0/30", "dc", "relay address 198.51.100.1/32 is never tunnelled")},
		},
	}, {
		name:   "guards win in include mode and over an admin exclude",
		policy: Policy{Mode: ModeInclude, Include: []Entry{{Prefix: pfx("10.1.0.0/30")}}, Exclude: []Entry{{Prefix: pfx("10.1.0.0/30")}}},
		routes: []Route{{Prefix: pfx("10.1.0.0/30"), Connector: "home"}},
		guards: []Guard{{Prefix: pfx("10.1.0.1/32"), Reason: "default gateway"}},
		want: Result{
			Tunnel: []Decision{
				tun("10.1.0.0/32", "home", "route 10.1.0.0/30 via home; included by 10.1.0.0/30", "10.1.0.0/30"),
				tun("10.1.0.2/31", "home", "route 10.1.0.0/30 via home; included by 10.1.0.0/30", "10.1.0.0/30"),
			},
			Bypass: []Decision{byp("10.1.0.1/32", "10.1.0.0/30", "home", "default gateway 10.1.0.1/32 is never tunnelled")},
		},
	}, {
		name:   "longest route wins",
		policy: DefaultPolicy(),
		routes: []Route{{Prefix: pfx("10.0.0.0/22"), Connector: "a"}, {Prefix: pfx("10.0.1.0/24"), Connector: "b"}},
		want: Result{Tunnel: []Decision{
			tun("10.0.0.0/24", "a", "route 10.0.0.0/22 via a"+rfc1918_10, "10.0.0.0/22"),
			tun("10.0.1.0/24", "b", "route 10.0.1.0/24 via b"+rfc1918_10, "10.0.1.0/24"),
			tun("10.0.2.0/23", "a", "route 10.0.0.0/22 via a"+rfc1918_10, "10.0.0.0/22"),
		}},
	}, {
		name:   "nested routes of one connector merge",
		policy: DefaultPolicy(),
		routes: []Route{{Prefix: pfx("10.0.1.0/24"), Connector: "a"}, {Prefix: pfx("10.0.0.0/22"), Connector: "a"}},
		want: Result{Tunnel: []Decision{
			tun("10.0.0.0/22", "a", "routes 10.0.0.0/22, 10.0.1.0/24 via a"+rfc1918_10, "10.0.0.0/22", "10.0.1.0/24"),
		}},
	}, {
		name:   "IPv4 sorts before IPv6",
		policy: DefaultPolicy(),
		routes: []Route{{Prefix: pfx("2001:db8::/32"), Connector: "x"}, {Prefix: pfx("fd00:1::/64")}, {Prefix: pfx("203.0.113.0/24"), Connector: "y"}},
		want: Result{Tunnel: []Decision{
			tun("203.0.113.0/24", "y", "route 203.0.113.0/24 via y", "203.0.113.0/24"),
			tun("2001:db8::/32", "x", "route 2001:db8::/32 via x", "2001:db8::/32"),
			tun("fd00:1::/64", "", "route fd00:1::/64; carved out of builtin exclude fd00::/8 (IPv6 unique local)", "fd00:1::/64"),
		}},
	}, {
		name:   "no routes, nothing to do",
		policy: DefaultPolicy(),
		guards: []Guard{{Prefix: pfx("198.51.100.10/32"), Reason: "coordinator address"}},
	}, {
		name:   "empty mode reads as exclude",
		policy: Policy{Exclude: []Entry{{Prefix: pfx("10.0.0.0/25")}}},
		routes: []Route{{Prefix: pfx("10.0.0.0/24"), Connector: "a"}},
		want: Result{
			Tunnel:   []Decision{tun("10.0.0.128/25", "a", "route 10.0.0.0/24 via a", "10.0.0.0/24")},
			Bypass:   []Decision{byp("10.0.0.0/25", "10.0.0.0/24", "a", "excluded by 10.0.0.0/25")},
			Warnings: []string{"exclude 10.0.0.0/25 shadows part of route 10.0.0.0/24 via a"},
		},
	}, {
		name:   "inputs are normalized",
		policy: Policy{Mode: ModeExclude},
		routes: []Route{{Prefix: netip.PrefixFrom(netip.MustParseAddr("192.168.0.7"), 29), Connector: "a"}, {}},
		guards: []Guard{{Prefix: pfx("::ffff:192.168.0.1/128"), Reason: "default gateway"}, {}},
		want: Result{
			Tunnel: []Decision{
				tun("192.168.0.0/32", "a", "route 192.168.0.0/29 via a", "192.168.0.0/29"),
				tun("192.168.0.2/31", "a", "route 192.168.0.0/29 via a", "192.168.0.0/29"),
				tun("192.168.0.4/30", "a", "route 192.168.0.0/29 via a", "192.168.0.0/29"),
			},
			Bypass: []Decision{byp("192.168.0.1/32", "192.168.0.0/29", "a", "default gateway 192.168.0.1/32 is never tunnelled")},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Compute(tt.policy, tt.routes, tt.guards)
			if diff := cmp.Diff(tt.want, got, cmpOpts, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Compute() mismatch (-want +got):\n%s", diff)
			}
			checkResult(t, tt.policy, tt.routes, tt.guards, got)
		})
	}
}

func TestResultPrefixes(t *testing.T) {
	res := Compute(DefaultPolicy(), []Route{
		{Prefix: pfx("10.0.0.0/22"), Connector: "a"},
		{Prefix: pfx("10.0.1.0/24"), Connector: "b"},
		{Prefix: pfx("2001:db8::/48"), Connector: "b"},
	}, nil)
	got := res.TunnelPrefixes()
	want := []netip.Prefix{pfx("10.0.0.0/24"), pfx("10.0.1.0/24"), pfx("10.0.2.0/23"), pfx("2001:db8::/48")}
	if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
		t.Errorf("TunnelPrefixes() (-want +got):\n%s", diff)
	}
	gotBy := res.ConnectorPrefixes()
	wantBy := map[string][]netip.Prefix{
		"a": {pfx("10.0.0.0/24"), pfx("10.0.2.0/23")},
		"b": {pfx("10.0.1.0/24"), pfx("2001:db8::/48")},
	}
	if diff := cmp.Diff(wantBy, gotBy, cmpOpts); diff != "" {
		t.Errorf("ConnectorPrefixes() (-want +got):\n%s", diff)
	}
}
