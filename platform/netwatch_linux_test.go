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
	_, ll, _ := net.ParseCIDR("fe80::68b6:e9ff:fe30:586a/128")
	_, mc, _ := net.ParseCIDR("ff00::/8")
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
		{"cached", netlink.RouteUpdate{Type: unix.RTM_NEWROUTE, Route: netlink.Route{Dst: lan, LinkIndex: 2, Flags: unix.RTM_F_CLONED}}, netEvent{}, false},
		{"link-local", netlink.RouteUpdate{Type: unix.RTM_NEWROUTE, Route: netlink.Route{Dst: ll, LinkIndex: 2}}, netEvent{}, false},
		{"multicast", netlink.RouteUpdate{Type: unix.RTM_NEWROUTE, Route: netlink.Route{Dst: mc, LinkIndex: 2}}, netEvent{}, false},
	} {
		got, keep := routeEvent(tt.u, names)
		if got != tt.want || keep != tt.keep {
			t.Errorf("%s: got %+v, %v; want %+v, %v", tt.name, got, keep, tt.want, tt.keep)
		}
	}
}

// TestAddrEvent: link-local addresses come and go with their links and do
// not count; others do.
func TestAddrEvent(t *testing.T) {
	for _, tt := range []struct {
		addr string
		add  bool
		want netEvent
		keep bool
	}{
		{"10.1.0.3/24", true, netEvent{iface: "eth0", what: "address 10.1.0.3/24 added"}, true},
		{"10.1.0.2/24", false, netEvent{iface: "eth0", what: "address 10.1.0.2/24 removed"}, true},
		{"2001:db8::2/64", true, netEvent{iface: "eth0", what: "address 2001:db8::2/64 added"}, true},
		{"fe80::1/64", true, netEvent{}, false},
	} {
		ip, n, _ := net.ParseCIDR(tt.addr)
		n.IP = ip
		got, keep := addrEvent(netlink.AddrUpdate{LinkAddress: *n, NewAddr: tt.add}, "eth0")
		if got != tt.want || keep != tt.keep {
			t.Errorf("%s: got %+v, %v; want %+v, %v", tt.addr, got, keep, tt.want, tt.keep)
		}
	}
}
