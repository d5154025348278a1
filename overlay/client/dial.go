package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/warrennet/warren/routes"
)

// tunnelDialer is what the userspace mode's device (a local
// netstack.Stack) offers: flows through the tunnel, from the node's
// overlay address.
type tunnelDialer interface {
	DialTCP(ctx context.Context, dst netip.AddrPort) (net.Conn, error)
	DialUDP(dst netip.AddrPort) (net.Conn, error)
}

// path is how DialContext reaches one destination.
type path int

const (
	// pathDirect: from the laptop's own network, as if Warren were not
	// there.
	pathDirect path = iota
	// pathTunnel: through WireGuard to the connector that serves it.
	pathTunnel
)

func (p path) String() string {
	if p == pathTunnel {
		return "tunnel"
	}
	return "direct"
}

// errTunnelDown refuses an overlay destination while there is no tunnel:
// dialled directly it would only wander off to the default route.
var errTunnelDown = errors.New("the tunnel is down: run warren up")

// pathTo decides how a reaches its host: the split decision the TUN mode
// makes with kernel routes. While the tunnel is up, an overlay address or
// one inside an installed prefix (e.routed, which the guards and the
// split policy already shaped) goes through the tunnel, anything else
// directly; while it is down, nothing is tunnelled, and an overlay
// address cannot be reached at all.
func (e *Engine) pathTo(up bool, a netip.Addr) (path, error) {
	switch {
	case !up && routes.Overlay.Contains(a):
		return pathDirect, errTunnelDown
	case up && e.tunnelled(a):
		return pathTunnel, nil
	}
	return pathDirect, nil
}

// DialContext opens a connection to address ("host:port") as a program on
// this machine would reach it through Warren. network is tcp or udp
// (tcp4, tcp6, udp4, udp6 limit the addresses tried). A host name is
// looked up in the netmap's named hosts and nodes first, then with the
// system's resolver; each address is tried in turn until one connects.
// An address the tunnel carries (pathTo) goes through the userspace
// stack in userspace mode, or through the kernel, whose routes lead into
// the TUN, in TUN mode; any other is dialled directly from the laptop.
// It implements the proxies' Dialer and serves `warren nc`.
func (e *Engine) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	proto, family := network, ""
	if n := len(network); n > 0 && (network[n-1] == '4' || network[n-1] == '6') {
		proto, family = network[:n-1], network[n-1:]
	}
	if proto != "tcp" && proto != "udp" {
		return nil, fmt.Errorf("dialing %s: network %q is not tcp or udp", address, network)
	}
	host, portText, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("dialing %q: %w", address, err)
	}
	port, err := lookupPort(ctx, proto, portText)
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", address, err)
	}
	addrs, err := e.resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	var firstErr error
	tried := 0
	for _, a := range addrs {
		if (family == "4" && !a.Is4()) || (family == "6" && !a.Is6()) {
			continue
		}
		tried++
		c, err := e.dialAddr(ctx, proto, netip.AddrPortFrom(a, port))
		if err == nil {
			return c, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	if tried == 0 {
		return nil, fmt.Errorf("dialing %s: no ipv%s address for %s", address, family, host)
	}
	return nil, firstErr
}

// lookupPort reads a port number or a service name.
func lookupPort(ctx context.Context, proto, text string) (uint16, error) {
	if n, err := strconv.ParseUint(text, 10, 16); err == nil {
		if n == 0 {
			return 0, errors.New("port 0 cannot be dialled")
		}
		return uint16(n), nil
	}
	n, err := net.DefaultResolver.LookupPort(ctx, proto, text)
	if err != nil || n <= 0 || n > 65535 {
		return 0, fmt.Errorf("%q is not a port number or a known service", text)
	}
	return uint16(n), nil
}

// resolve turns host into addresses: an IP literal as it is, a name from
// the netmap (named hosts, then nodes) if it is there, else from the
// system's resolver.
func (e *Engine) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return nil, fmt.Errorf("%q: zoned addresses cannot be dialled", host)
		}
		return []netip.Addr{a.Unmap()}, nil
	}
	if host == "" {
		return nil, errors.New("no host to dial")
	}
	if a, ok := e.netmapName(host); ok {
		return []netip.Addr{a}, nil
	}
	addrs, err := e.cfg.LookupHost(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("looking up %s: %w", host, err)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("looking up %s: no addresses", host)
	}
	out := make([]netip.Addr, len(addrs))
	for i, a := range addrs {
		out[i] = a.Unmap()
	}
	return out, nil
}

// netmapName finds name among the applied netmap's named hosts, then its
// nodes (this one and the connectors), ignoring case and a final dot.
func (e *Engine) netmapName(name string) (netip.Addr, bool) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	e.mu.Lock()
	s := e.running
	e.mu.Unlock()
	if s == nil {
		return netip.Addr{}, false
	}
	s.mu.Lock()
	nm := s.nm
	s.mu.Unlock()
	if nm == nil {
		return netip.Addr{}, false
	}
	for _, h := range nm.Hosts {
		if h.Name == name && h.Address.IsValid() {
			return h.Address.Unmap(), true
		}
	}
	if nm.Self.Name == name && nm.Self.Address.IsValid() {
		return nm.Self.Address, true
	}
	for _, p := range nm.Peers {
		if p.Name == name && p.Address.IsValid() {
			return p.Address, true
		}
	}
	return netip.Addr{}, false
}

// dialAddr dials one address by the path pathTo chooses.
func (e *Engine) dialAddr(ctx context.Context, proto string, dst netip.AddrPort) (net.Conn, error) {
	e.mu.Lock()
	s := e.running
	e.mu.Unlock()
	up := s != nil && s.currentView() != nil
	p, err := e.pathTo(up, dst.Addr())
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", dst, err)
	}
	if p == pathTunnel && s.tunnel != nil {
		e.log.Debug("dialing through the tunnel", "proto", proto, "dest", dst)
		var c net.Conn
		if proto == "udp" {
			c, err = s.tunnel.DialUDP(dst)
		} else {
			c, err = s.tunnel.DialTCP(ctx, dst)
		}
		if err != nil {
			return nil, fmt.Errorf("dialing %s through the tunnel: %w", dst, err)
		}
		return c, nil
	}
	// Direct, or tunnelled in TUN mode: the kernel's routes decide, and
	// they say the same.
	e.log.Debug("dialing from this machine", "proto", proto, "dest", dst, "path", p)
	c, err := e.cfg.Dial(ctx, proto, dst.String())
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", dst, err)
	}
	return c, nil
}
