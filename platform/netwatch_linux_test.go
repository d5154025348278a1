//go:build linux

package platform

import (
	"net"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestRouteEvent: the routes Warren installs never count as a change of
// the network; everyone else's do, named by their interface.
func TestRouteEvent(t *testing.T) {
	_, lan, _ := net.ParseCIDR("192.168.0.0/24")
	names := func(i int) string { return map[int]string{2: "eth0", 5: "warren0"}[i] }
	for _, tt := range []struct {
		name string
		u    netlink.RouteUpdate
		want netEvent
		keep bool
	}{
		{"ours", netlink.RouteUpdate{Type: unix.RTM_NEWROUTE, Route: netlink.Route{Dst: lan, LinkIndex: 5, Protocol: RouteProtocol}}, netEvent{}, false},
		{"default added", netlink.RouteUpdate{Type: unix.RTM_NEWROUTE, Route: netlink.Route{LinkIndex: 2, Protocol: unix.RTPROT_BOOT}}, netEvent{iface: "eth0", what: "route to default added"}, true},
		{"removed", netlink.RouteUpdate{Type: unix.RTM_DELROUTE, Route: netlink.Route{Dst: lan, LinkIndex: 2}}, netEvent{iface: "eth0", what: "route to 192.168.0.0/24 removed"}, true},
		{"multipath", netlink.RouteUpdate{Type: unix.RTM_NEWROUTE, Route: netlink.Route{Dst: lan}}, netEvent{what: "route to 192.168.0.0/24 added"}, true},
	} {
		got, keep := routeEvent(tt.u, names)
		if got != tt.want || keep != tt.keep {
			t.Errorf("%s: got %+v, %v; want %+v, %v", tt.name, got, keep, tt.want, tt.keep)
		}
	}
}
