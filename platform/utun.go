package platform

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/warrennet/warren/routes"
)

// This file is the darwin Router above the system calls: which routing
// messages and address ioctls Set sends for an installed state and a
// Config, and how a routing-table dump becomes that state. It is untagged
// so that it is tested on Linux against a fake kernel (utun_test.go);
// router_darwin.go implements bsdKernel with the real system calls.

// bsdKernel is the macOS kernel as the darwin Router uses it. Errors from
// the kernel are syscall.Errno values (EEXIST, ESRCH, EADDRNOTAVAIL are
// told apart), wrapped or not.
type bsdKernel interface {
	// link returns the named interface; an error wrapping errNoLink when
	// there is none.
	link(name string) (bsdLink, error)
	// addrs returns the addresses of the named interface.
	addrs(name string) ([]netip.Prefix, error)
	// setMTU sets the named interface's MTU; setUp brings it up.
	setMTU(name string, mtu int) error
	setUp(name string) error
	// rib returns the routing table as sysctl NET_RT_DUMP gives it.
	rib() ([]byte, error)
	// route writes one routing message to a routing socket. The kernel
	// answers a write it refuses with the write's error.
	route(msg []byte) error
	// ioctl performs the address ioctl req with the request arg on a
	// datagram socket of family (afInet or afInet6).
	ioctl(family int, req uint32, arg []byte) error
}

// bsdLink is what the Router needs to know of an interface.
type bsdLink struct {
	Index int
	MTU   int
	Up    bool
}

// errNoLink: the interface does not exist.
var errNoLink = errors.New("no such interface")

// The address ioctls (<sys/sockio.h>, <netinet6/in6_var.h>); each number
// carries the size of its request, which the tests check against the
// encoders below.
const (
	siocAIFADDR     = 0x8040691a // struct ifaliasreq, 64 bytes
	siocDIFADDR     = 0x80206919 // struct ifreq, 32 bytes
	siocAIFADDRIn6  = 0x8080691a // struct in6_aliasreq, 128 bytes
	siocDIFADDRIn6  = 0x81206919 // struct in6_ifreq, 288 bytes
	ifNameSize      = 16
	in6IffNoDAD     = 0x20       // IN6_IFF_NODAD
	nd6InfiniteLife = 0xffffffff // ND6_INFINITE_LIFETIME
)

// utunName is the name to ask wireguard-go's darwin CreateTUN for: macOS
// names every user-space tunnel utunN, so a name that is not one (such as
// the default warren0) lets the kernel choose ("utun"). The device's Name
// is the one it got.
func utunName(name string) string {
	if n, ok := strings.CutPrefix(name, "utun"); ok {
		if _, err := strconv.ParseUint(n, 10, 16); err == nil || n == "" {
			return name
		}
	}
	return "utun"
}

// isUtun reports whether name is a utun device's, the only kind whose
// addresses the darwin Router manages.
func isUtun(name string) bool { return utunName(name) == name }

// aliasReq returns the ioctl that adds p to the interface: IPv4 as the
// address of a point-to-point link to itself, as ifconfig does for a
// utun; IPv6 with infinite lifetimes and no duplicate address detection
// (a tunnel has no neighbours to collide with).
func aliasReq(name string, p netip.Prefix) (family int, req uint32, arg []byte) {
	if p.Addr().Is4() {
		arg = make([]byte, 64)
		copy(arg, name)
		putSockaddrInet(arg[16:], p.Addr())
		putSockaddrInet(arg[32:], p.Addr())
		putSockaddrInet(arg[48:], maskOf(p))
		return afInet, siocAIFADDR, arg
	}
	arg = make([]byte, 128)
	copy(arg, name)
	putSockaddrInet(arg[16:], p.Addr()) // ifra_addr; ifra_dstaddr (44) stays empty
	putSockaddrInet(arg[72:], maskOf(p))
	binary.LittleEndian.PutUint32(arg[100:], in6IffNoDAD)
	// ifra_lifetime at 104: ia6t_expire and ia6t_preferred (time_t) stay 0.
	binary.LittleEndian.PutUint32(arg[120:], nd6InfiniteLife)
	binary.LittleEndian.PutUint32(arg[124:], nd6InfiniteLife)
	return afInet6, siocAIFADDRIn6, arg
}

// deleteAddrReq returns the ioctl that removes p's address from the
// interface.
func deleteAddrReq(name string, p netip.Prefix) (family int, req uint32, arg []byte) {
	if p.Addr().Is4() {
		arg = make([]byte, 32)
		copy(arg, name)
		putSockaddrInet(arg[16:], p.Addr())
		return afInet, siocDIFADDR, arg
	}
	arg = make([]byte, 288)
	copy(arg, name)
	putSockaddrInet(arg[16:], p.Addr())
	return afInet6, siocDIFADDRIn6, arg
}

// putSockaddrInet writes a as a sockaddr_in or sockaddr_in6 at b.
func putSockaddrInet(b []byte, a netip.Addr) { copy(b, appendSockaddrInet(nil, a)) }

// bsdRouter is the Router's macOS half: routes through the routing
// socket, addresses through ioctls, behind the same reconcile as Linux.
// Beyond addresses and routes, apply sets the MTU when the Config names
// one and brings the interface up. Every route gets the same priority:
// macOS routes have no metric, so Config.Metric is not used, and an
// identical route somebody else installed makes adding Warren's fail.
type bsdRouter struct {
	log *slog.Logger
	k   bsdKernel
	seq int32 // rtm_seq of the last routing message; the router's mu guards it
}

func newBSDRouter(log *slog.Logger, k bsdKernel) *bsdRouter {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &bsdRouter{log: log, k: k}
}

// apply makes cfg.Interface match cfg.
func (r *bsdRouter) apply(cfg *Config) error {
	name := cfg.Interface
	if !isUtun(name) {
		return fmt.Errorf("interface %s is not a utun device, refusing to manage it: %w", name, ErrNotTUN)
	}
	l, err := r.k.link(name)
	if err != nil {
		return fmt.Errorf("finding interface %s: %w", name, err)
	}
	log := r.log.With("interface", name)
	var errs []error
	if cfg.MTU != 0 && l.MTU != cfg.MTU {
		if err := r.k.setMTU(name, cfg.MTU); err != nil {
			errs = append(errs, fmt.Errorf("setting mtu of %s to %d: %w", name, cfg.MTU, err))
		} else {
			log.Info("mtu set", "mtu", cfg.MTU)
		}
	}
	if !l.Up {
		if err := r.k.setUp(name); err != nil {
			errs = append(errs, fmt.Errorf("bringing %s up: %w", name, err))
		} else {
			log.Info("interface up")
		}
	}
	errs = append(errs, reconcile(log, r.state(name, l.Index, true), bsdDesired(cfg)))
	return errors.Join(errs...)
}

func (r *bsdRouter) clear(name string) error { return r.clearLink(name, true) }

func (r *bsdRouter) release() {}

// clearLink removes Warren's state from the named interface: its routes,
// and its global addresses when ownAddrs is set and it is a utun. An
// interface that does not exist is clean: macOS removes a utun's routes
// with it.
func (r *bsdRouter) clearLink(name string, ownAddrs bool) error {
	l, err := r.k.link(name)
	if errors.Is(err, errNoLink) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("finding interface %s: %w", name, err)
	}
	return reconcile(r.log.With("interface", name), r.state(name, l.Index, ownAddrs && isUtun(name)), state{})
}

func (r *bsdRouter) state(name string, index int, ownAddrs bool) *utunState {
	return &utunState{k: r.k, name: name, index: index, ownAddrs: ownAddrs, seq: &r.seq}
}

// bsdDesired is the state cfg asks for on macOS: desired's, with every
// route at metric 0, the only one a dump reports.
func bsdDesired(cfg *Config) state {
	s := desired(cfg)
	for i := range s.Routes {
		s.Routes[i].Metric = 0
	}
	s.Routes = slices.Compact(s.Routes)
	return s
}

// utunState is the netState of one interface on macOS. It owns the
// interface's global unicast addresses when ownAddrs is set, and the
// routes through it that owned (rtEntry) recognises.
type utunState struct {
	k        bsdKernel
	name     string
	index    int
	ownAddrs bool
	seq      *int32 // the router's, guarded by its mu
}

func (u *utunState) read() (state, error) {
	var s state
	if u.ownAddrs {
		as, err := u.k.addrs(u.name)
		if err != nil {
			return state{}, fmt.Errorf("listing addresses of %s: %w", u.name, err)
		}
		for _, a := range as {
			if a.Addr().IsGlobalUnicast() {
				s.Addrs = append(s.Addrs, a)
			}
		}
	}
	rib, err := u.k.rib()
	if err != nil {
		return state{}, fmt.Errorf("listing routes via %s: %w", u.name, err)
	}
	s.Routes, err = ownedRoutes(rib, u.index)
	if err != nil {
		return state{}, fmt.Errorf("listing routes via %s: %w", u.name, err)
	}
	routes.SortPrefixes(s.Addrs)
	s.Addrs = slices.Compact(s.Addrs)
	return s, nil
}

// ownedRoutes returns Warren's routes through the interface with this
// index in a dump, sorted, at metric 0.
func ownedRoutes(rib []byte, index int) ([]route, error) {
	es, err := parseRIB(rib)
	if err != nil {
		return nil, err
	}
	var rs []route
	for _, e := range es {
		if e.owned(index) {
			rs = append(rs, route{Prefix: e.Dst})
		}
	}
	slices.SortFunc(rs, compareRoutes)
	return slices.Compact(rs), nil
}

func (u *utunState) addAddr(p netip.Prefix) error {
	if err := u.k.ioctl(aliasReq(u.name, p)); err != nil {
		return fmt.Errorf("adding address %v to %s: %w", p, u.name, err)
	}
	return nil
}

// delAddr removes p. macOS keys addresses by address alone: adding an
// IPv4 address that exists with another prefix length replaced it, and
// deleting by address would now remove the replacement, so an address no
// longer installed as p is left alone. (An IPv6 one changing its length
// is deleted first; see diff.)
func (u *utunState) delAddr(p netip.Prefix) error {
	as, err := u.k.addrs(u.name)
	if err != nil {
		return fmt.Errorf("removing address %v from %s: %w", p, u.name, err)
	}
	if !slices.Contains(as, p) {
		return nil
	}
	err = u.k.ioctl(deleteAddrReq(u.name, p))
	if err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) {
		return fmt.Errorf("removing address %v from %s: %w", p, u.name, err)
	}
	return nil
}

func (u *utunState) addRoute(r route) error {
	err := u.k.route(u.msg(rtmAdd, r))
	if errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("adding route %v via %s: a route to it that warren does not own exists: %w", r.Prefix, u.name, err)
	}
	if err != nil {
		return fmt.Errorf("adding route %v via %s: %w", r.Prefix, u.name, err)
	}
	return nil
}

// delRoute deletes the route to r's prefix. The kernel deletes by
// destination and netmask: it is Warren's because read found it so.
func (u *utunState) delRoute(r route) error {
	err := u.k.route(u.msg(rtmDelete, r))
	if err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("removing route %v via %s: %w", r.Prefix, u.name, err)
	}
	return nil
}

func (u *utunState) msg(typ uint8, r route) []byte {
	*u.seq++
	return marshalRouteMsg(typ, *u.seq, r.Prefix, u.index, u.name)
}

// ribDefaultGateways returns the gateways of the default routes in a
// dump (scoped ones too: each interface's default gateway), IPv4 before
// IPv6, sorted and without duplicates. A default route through an
// interface rather than a gateway (Warren's among them) contributes
// nothing.
func ribDefaultGateways(rib []byte) ([]netip.Addr, error) {
	es, err := parseRIB(rib)
	if err != nil {
		return nil, err
	}
	var gws []netip.Addr
	for _, e := range es {
		if e.Dst.Bits() == 0 && e.Flags&rtfGateway != 0 && e.GatewayAddr.IsValid() && !e.GatewayAddr.IsUnspecified() {
			gws = append(gws, e.GatewayAddr)
		}
	}
	slices.SortFunc(gws, netip.Addr.Compare)
	return slices.Compact(gws), nil
}

// connectedPrefixes turns interface addresses into the prefixes they
// connect: each masked, link-local and loopback ones left out, sorted in
// the order of routes.SortPrefixes, without duplicates.
func connectedPrefixes(addrs []netip.Prefix) []netip.Prefix {
	var ps []netip.Prefix
	for _, p := range addrs {
		if !p.IsValid() || p.Addr().IsLinkLocalUnicast() || p.Addr().IsLoopback() {
			continue
		}
		ps = append(ps, p.Masked())
	}
	routes.SortPrefixes(ps)
	return slices.Compact(ps)
}
