package client

import (
	"net/netip"
	"testing"
)

// TestTunnelled checks what the Bind is told never to reach directly: the
// overlay range, and whatever the tunnel routes as installed last.
func TestTunnelled(t *testing.T) {
	e := &Engine{}
	check := func(when string, want map[string]bool) {
		t.Helper()
		for a, w := range want {
			if got := e.tunnelled(netip.MustParseAddr(a)); got != w {
				t.Errorf("%s: tunnelled(%s) = %v, want %v", when, a, got, w)
			}
		}
	}
	check("before any netmap", map[string]bool{"100.96.0.1": true, "100.111.255.254": true, "192.168.0.2": false, "198.51.100.20": false})

	routed := []netip.Prefix{netip.MustParsePrefix("192.168.0.0/24"), netip.MustParsePrefix("10.20.0.0/16")}
	e.routed.Store(&routed)
	check("with routes", map[string]bool{"100.96.0.1": true, "192.168.0.2": true, "10.20.3.4": true, "192.168.1.2": false, "198.51.100.20": false, "2001:db8::1": false})

	none := []netip.Prefix{}
	e.routed.Store(&none)
	check("after the routes went", map[string]bool{"192.168.0.2": false, "100.96.0.1": true})
}

// TestPathTo is DialContext's split decision: what the tunnel carries
// goes through it while it is up; the rest, and everything while it is
// down, directly; an overlay address while down nowhere.
func TestPathTo(t *testing.T) {
	e := &Engine{}
	routed := []netip.Prefix{netip.MustParsePrefix("192.168.0.0/24"), netip.MustParsePrefix("2001:db8:1::/48")}
	e.routed.Store(&routed)
	for _, tc := range []struct {
		addr string
		up   bool
		want path
		err  bool
	}{
		{addr: "192.168.0.10", up: true, want: pathTunnel},
		{addr: "2001:db8:1::10", up: true, want: pathTunnel},
		{addr: "100.96.0.1", up: true, want: pathTunnel},
		{addr: "192.168.1.10", up: true, want: pathDirect},
		{addr: "198.51.100.20", up: true, want: pathDirect},
		{addr: "2001:db8:2::10", up: true, want: pathDirect},
		{addr: "127.0.0.1", up: true, want: pathDirect},
		{addr: "192.168.0.10", up: false, want: pathDirect},
		{addr: "198.51.100.20", up: false, want: pathDirect},
		{addr: "100.96.0.1", up: false, err: true},
	} {
		got, err := e.pathTo(tc.up, netip.MustParseAddr(tc.addr))
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("pathTo(up=%v, %s) = %v, %v; want %v (error: %v)", tc.up, tc.addr, got, err, tc.want, tc.err)
		}
	}
}
