//go:build linux

package platform

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/warrennet/warren/routes"
)

// RouteProtocol is the rtnetlink protocol number (rtm_protocol) on every
// route Warren installs; `ip route` shows it as "proto 87". It is how
// Warren tells its routes from everyone else's, on a live system and after
// a crash (Cleanup). The kernel does not interpret numbers above 4
// (RTPROT_STATIC); 87 ('W') is in none of the registries that hand them
// out: linux/rtnetlink.h and iproute2's rt_protos name 8-18, 42, 99 and
// 186-192.
const RouteProtocol = 87

// netlinkTimeout bounds every netlink request, so a wedged kernel
// conversation fails instead of hanging the daemon.
const netlinkTimeout = 5 * time.Second

// dumpRetries is how often a dump the kernel interrupted (its state
// changed mid-dump) is retried before the error is returned.
const dumpRetries = 3

// linuxRouter is the Router's Linux half: rtnetlink through its own
// socket.
type linuxRouter struct {
	log *slog.Logger
	h   *netlink.Handle
}

// NewRouter returns a Router that manages addresses and routes through
// rtnetlink. It installs nothing until Set. Beyond addresses and routes,
// Set sets the MTU when the Config names one and brings the interface up.
// A nil log discards.
func NewRouter(log *slog.Logger) (Router, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h, err := newHandle()
	if err != nil {
		return nil, err
	}
	return newRouter(&linuxRouter{log: log, h: h}), nil
}

func newHandle() (*netlink.Handle, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("opening rtnetlink socket: %w", err)
	}
	if err := h.SetSocketTimeout(netlinkTimeout); err != nil {
		h.Close()
		return nil, fmt.Errorf("setting rtnetlink socket timeout: %w", err)
	}
	return h, nil
}

// apply makes cfg.Interface match cfg.
func (r *linuxRouter) apply(cfg *Config) error {
	name := cfg.Interface
	link, err := r.h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("finding interface %s: %w", name, err)
	}
	if !isTUN(link) {
		return fmt.Errorf("interface %s is a %s device, refusing to manage it: %w", name, link.Type(), ErrNotTUN)
	}
	log := r.log.With("interface", name)
	var errs []error
	attrs := link.Attrs()
	if cfg.MTU != 0 && attrs.MTU != cfg.MTU {
		if err := r.h.LinkSetMTU(link, cfg.MTU); err != nil {
			errs = append(errs, fmt.Errorf("setting mtu of %s to %d: %w", name, cfg.MTU, err))
		} else {
			log.Info("mtu set", "mtu", cfg.MTU)
		}
	}
	if attrs.Flags&net.FlagUp == 0 {
		if err := r.h.LinkSetUp(link); err != nil {
			errs = append(errs, fmt.Errorf("bringing %s up: %w", name, err))
		} else {
			log.Info("interface up")
		}
	}
	errs = append(errs, reconcile(log, &linkState{h: r.h, link: link, ownAddrs: true}, desired(cfg)))
	return errors.Join(errs...)
}

func (r *linuxRouter) clear(name string) error { return clearLink(r.log, r.h, name) }

func (r *linuxRouter) release() { r.h.Close() }

// Cleanup removes what a previous run that did not Close left on the named
// interface: every route marked with RouteProtocol in the main table and,
// when the interface is a TUN device, its global addresses. An interface
// that does not exist is clean: its routes and addresses went with it.
// Cleanup never touches routes that are not marked as Warren's, and never
// an address on an interface that is not a TUN device.
func Cleanup(iface string) error {
	if err := checkInterfaceName(iface); err != nil {
		return err
	}
	h, err := newHandle()
	if err != nil {
		return err
	}
	defer h.Close()
	return clearLink(slog.New(slog.DiscardHandler), h, iface)
}

// clearLink removes Warren's state from the named interface.
func clearLink(log *slog.Logger, h *netlink.Handle, name string) error {
	link, err := h.LinkByName(name)
	if errors.As(err, &netlink.LinkNotFoundError{}) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("finding interface %s: %w", name, err)
	}
	return reconcile(log.With("interface", name), &linkState{h: h, link: link, ownAddrs: isTUN(link)}, state{})
}

// isTUN reports whether link is a TUN/TAP device, the only kind whose
// addresses Warren manages.
func isTUN(link netlink.Link) bool {
	return link.Type() == (&netlink.Tuntap{}).Type()
}

// linkState is the netState of one interface. It owns the interface's
// global unicast addresses when ownAddrs is set, and the routes through it
// in the main table that carry RouteProtocol.
type linkState struct {
	h        *netlink.Handle
	link     netlink.Link
	ownAddrs bool
}

func (l *linkState) name() string { return l.link.Attrs().Name }

func (l *linkState) read() (state, error) {
	var s state
	if l.ownAddrs {
		addrs, err := dump(func() ([]netlink.Addr, error) { return l.h.AddrList(l.link, netlink.FAMILY_ALL) })
		if err != nil {
			return state{}, fmt.Errorf("listing addresses of %s: %w", l.name(), err)
		}
		for _, a := range addrs {
			if p, ok := ownedAddr(a); ok {
				s.Addrs = append(s.Addrs, p)
			}
		}
	}
	filter := &netlink.Route{LinkIndex: l.link.Attrs().Index, Protocol: RouteProtocol, Table: unix.RT_TABLE_MAIN}
	rs, err := dump(func() ([]netlink.Route, error) {
		return l.h.RouteListFiltered(netlink.FAMILY_ALL, filter, netlink.RT_FILTER_OIF|netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return state{}, fmt.Errorf("listing routes via %s: %w", l.name(), err)
	}
	for _, r := range rs {
		if p, ok := routeDst(r); ok {
			s.Routes = append(s.Routes, route{Prefix: p, Metric: uint32(r.Priority)})
		}
	}
	routes.SortPrefixes(s.Addrs)
	slices.SortFunc(s.Routes, compareRoutes)
	return s, nil
}

func (l *linkState) addAddr(p netip.Prefix) error {
	a := &netlink.Addr{IPNet: ipNet(p)}
	if p.Addr().Is6() {
		// A point-to-point tunnel has no neighbours to collide with;
		// without this the address would be unusable until DAD ends.
		a.Flags = unix.IFA_F_NODAD
	}
	if err := l.h.AddrAdd(l.link, a); err != nil {
		return fmt.Errorf("adding address %v to %s: %w", p, l.name(), err)
	}
	return nil
}

func (l *linkState) delAddr(p netip.Prefix) error {
	err := l.h.AddrDel(l.link, &netlink.Addr{IPNet: ipNet(p)})
	if err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		return fmt.Errorf("removing address %v from %s: %w", p, l.name(), err)
	}
	return nil
}

func (l *linkState) addRoute(r route) error {
	nr := l.netlinkRoute(r)
	nr.Scope = netlink.SCOPE_LINK
	if r.Prefix.Addr().Is6() {
		nr.Scope = netlink.SCOPE_UNIVERSE // IPv6 routes have no scope
	}
	err := l.h.RouteAdd(nr)
	if errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("adding route %v via %s: a route to it with the same metric that warren does not own exists: %w", r, l.name(), err)
	}
	if err != nil {
		return fmt.Errorf("adding route %v via %s: %w", r, l.name(), err)
	}
	return nil
}

func (l *linkState) delRoute(r route) error {
	nr := l.netlinkRoute(r)
	nr.Scope = netlink.SCOPE_NOWHERE // any scope
	err := l.h.RouteDel(nr)
	if err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("removing route %v via %s: %w", r, l.name(), err)
	}
	return nil
}

// netlinkRoute is r as a Warren route through l. Metric 0 is not sent, so
// deleting an IPv4 route at metric 0 deletes the first of Warren's routes
// to the prefix through l; they are ordered by metric, so that is the one
// at metric 0.
func (l *linkState) netlinkRoute(r route) *netlink.Route {
	return &netlink.Route{
		LinkIndex: l.link.Attrs().Index,
		Dst:       ipNet(r.Prefix),
		Protocol:  RouteProtocol,
		Table:     unix.RT_TABLE_MAIN,
		Priority:  int(r.Metric),
	}
}

// dump runs a netlink dump, retrying one the kernel interrupted.
func dump[T any](list func() ([]T, error)) ([]T, error) {
	for i := 0; ; i++ {
		v, err := list()
		if errors.Is(err, netlink.ErrDumpInterrupted) && i < dumpRetries {
			continue
		}
		return v, err
	}
}

// ownedAddr returns a's address and prefix length when it is an address
// Warren may own: global unicast, not one the kernel made for the link.
func ownedAddr(a netlink.Addr) (netip.Prefix, bool) {
	if a.IPNet == nil {
		return netip.Prefix{}, false
	}
	p, ok := prefixOf(a.IPNet)
	if !ok || !p.Addr().IsGlobalUnicast() {
		return netip.Prefix{}, false
	}
	return p, true
}

// routeDst returns r's destination; a route without one is a default
// route.
func routeDst(r netlink.Route) (netip.Prefix, bool) {
	if r.Dst == nil {
		switch r.Family {
		case netlink.FAMILY_V4:
			return netip.PrefixFrom(netip.IPv4Unspecified(), 0), true
		case netlink.FAMILY_V6:
			return netip.PrefixFrom(netip.IPv6Unspecified(), 0), true
		}
		return netip.Prefix{}, false
	}
	return prefixOf(r.Dst)
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
