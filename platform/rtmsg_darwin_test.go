package platform

import (
	"net/netip"
	"testing"

	xroute "golang.org/x/net/route"
	"golang.org/x/sys/unix"
)

// These run only on a Mac: the hand-written layouts of rtmsg.go against
// golang.org/x/net/route and the running kernel.

// TestRouteMsgAgainstXNetRoute: x/net/route reads Warren's messages as
// what they say.
func TestRouteMsgAgainstXNetRoute(t *testing.T) {
	for _, p := range []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("203.0.113.7/32")} {
		b := marshalRouteMsg(rtmAdd, 7, p, 9, "utun7")
		ms, err := xroute.ParseRIB(xroute.RIBTypeRoute, b)
		if err != nil || len(ms) != 1 {
			t.Fatalf("%v: ParseRIB = %v, %v", p, ms, err)
		}
		m := ms[0].(*xroute.RouteMessage)
		if m.Version != unix.RTM_VERSION || m.Type != unix.RTM_ADD || m.Index != 9 || m.Seq != 7 ||
			m.Flags != unix.RTF_UP|unix.RTF_STATIC|unix.RTF_PROTO1|map[bool]int{true: unix.RTF_HOST}[p.IsSingleIP()] {
			t.Errorf("%v: header %+v", p, m)
		}
		if dst, _ := xaddr(m.Addrs[unix.RTAX_DST]); dst != p.Addr() {
			t.Errorf("%v: destination %v", p, m.Addrs[unix.RTAX_DST])
		}
		if l, ok := m.Addrs[unix.RTAX_GATEWAY].(*xroute.LinkAddr); !ok || l.Index != 9 || l.Name != "utun7" {
			t.Errorf("%v: gateway %#v", p, m.Addrs[unix.RTAX_GATEWAY])
		}
	}
}

// TestParseRIBAgainstKernel: every IP route of the running system's
// table, as parseRIB reads it, has the interface and flags x/net/route
// reads.
func TestParseRIBAgainstKernel(t *testing.T) {
	rib, err := sysKernel{}.rib()
	if err != nil {
		t.Fatal(err)
	}
	es, err := parseRIB(rib)
	if err != nil {
		t.Fatalf("parseRIB: %v", err)
	}
	ms, err := xroute.ParseRIB(xroute.RIBTypeRoute, rib)
	if err != nil {
		t.Fatal(err)
	}
	type key struct {
		index int
		flags uint32
		dst   netip.Addr
	}
	theirs := make(map[key]bool)
	for _, m := range ms {
		rm, ok := m.(*xroute.RouteMessage)
		if !ok || len(rm.Addrs) == 0 {
			continue
		}
		dst, ok := xaddr(rm.Addrs[unix.RTAX_DST])
		if !ok {
			continue
		}
		theirs[key{rm.Index, uint32(rm.Flags), dst}] = true
	}
	if len(es) == 0 {
		t.Fatal("parseRIB found no routes in the system's table")
	}
	for _, e := range es {
		if !theirs[key{e.Index, e.Flags, e.Dst.Addr()}] {
			t.Errorf("parseRIB's %+v is not in x/net/route's reading", e)
		}
	}
	if _, err := ribDefaultGateways(rib); err != nil {
		t.Error(err)
	}
}

// xaddr is x/net/route's IP address as a netip.Addr; it has already taken
// the scope out of a link-local IPv6 address (into ZoneID).
func xaddr(a xroute.Addr) (netip.Addr, bool) {
	switch a := a.(type) {
	case *xroute.Inet4Addr:
		return netip.AddrFrom4(a.IP), true
	case *xroute.Inet6Addr:
		return netip.AddrFrom16(a.IP), true
	}
	return netip.Addr{}, false
}
