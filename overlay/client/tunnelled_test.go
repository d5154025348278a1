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
