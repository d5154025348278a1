package client

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/warrennet/warren/overlay/wgdev"
	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/platform"
	"github.com/warrennet/warren/routes"
	"github.com/warrennet/warren/split"
)

// keepalive holds NAT mappings open and detects dead paths.
const keepalive = 25 * time.Second

// view is what one applied netmap means for this machine. Immutable.
type view struct {
	version uint64
	self    wire.Node
	routes  []wire.Route
	peers   map[string]wire.Peer // connectors by name
	byKey   map[wire.Key]wire.Peer
	result  split.Result
	tunnel  []netip.Prefix
	// install is what goes into the kernel: tunnel, plus the halves of
	// any local LAN a tunnelled prefix covers, so the tunnel wins over the
	// LAN's connected route.
	install  []netip.Prefix
	warnings []string
	policy   split.Policy
	routed   []split.Route
	guards   []split.Guard
	// access is the access policy as the netmap states it.
	access wire.NetMapPolicy
}

// connectors lists the connectors that serve at least one tunnelled
// prefix and are online.
func (v *view) connectors() []string {
	var names []string
	for name, prefixes := range v.result.ConnectorPrefixes() {
		if p, ok := v.peers[name]; ok && p.Online && len(prefixes) > 0 {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

func (s *session) currentView() *view {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.view
}

// reapply applies the session's current netmap again, after a settings
// change.
func (e *Engine) reapply(ctx context.Context, s *session) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	s.mu.Lock()
	nm := s.nm
	s.mu.Unlock()
	if nm == nil {
		return nil
	}
	return e.applyLocked(ctx, s, nm)
}

// apply makes nm the machine's configuration: WireGuard peers first, then
// routes, so a route never points at a tunnel that cannot carry it yet.
func (e *Engine) apply(ctx context.Context, s *session, nm *wire.NetMap) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	return e.applyLocked(ctx, s, nm)
}

func (e *Engine) applyLocked(ctx context.Context, s *session, nm *wire.NetMap) error {
	v := e.compute(ctx, s, nm)
	var peers []wgdev.Peer
	shares := v.result.ConnectorPrefixes()
	for _, p := range nm.Peers {
		if p.Role != wire.RoleConnector {
			continue
		}
		allowed := append([]netip.Prefix{netip.PrefixFrom(p.Address, p.Address.BitLen())}, shares[p.Name]...)
		peers = append(peers, wgdev.Peer{
			PublicKey:           p.PublicKey,
			AllowedIPs:          allowed,
			Endpoint:            "relay:" + p.PublicKey.String(),
			PersistentKeepalive: keepalive,
		})
	}
	if nm.Relay.Endpoint != "" {
		addr, err := relayAddr(ctx, nm.Relay.Endpoint)
		if err != nil {
			return err
		}
		s.relay.SetRelay(addr, nm.Relay.Credential)
	}
	if err := s.dev.Apply(wgdev.Config{PrivateKey: s.id.PrivateKey, Peers: peers}); err != nil {
		return fmt.Errorf("configuring wireguard: %w", err)
	}
	self := netip.PrefixFrom(nm.Self.Address, nm.Self.Address.BitLen())
	// The Bind learns the new routes before the kernel does, so that it
	// never sends a direct probe into a route being added.
	routed := slices.Clone(v.install)
	e.routed.Store(&routed)
	if err := s.router.Set(&platform.Config{
		Interface: e.cfg.Interface,
		MTU:       e.cfg.MTU,
		Addresses: []netip.Prefix{self},
		Routes:    v.install,
	}); err != nil {
		return fmt.Errorf("installing routes: %w", err)
	}
	s.mu.Lock()
	first := s.view == nil
	s.view, s.nm = v, nm
	s.mu.Unlock()
	if first {
		close(s.applied)
	}
	e.log.Info("netmap applied", "version", nm.Version, "connectors", len(peers), "tunnelled", len(v.tunnel))
	return nil
}

// compute derives the view of nm: which prefixes are tunnelled, through
// which connector, and why the rest is not.
func (e *Engine) compute(ctx context.Context, s *session, nm *wire.NetMap) *view {
	v := &view{version: nm.Version, self: nm.Self, routes: nm.Routes, access: nm.Policy, peers: map[string]wire.Peer{}, byKey: map[wire.Key]wire.Peer{}}
	for _, p := range nm.Peers {
		if p.Role == wire.RoleConnector {
			v.peers[p.Name] = p
			v.byKey[p.PublicKey] = p
		}
	}
	v.policy = policyOf(nm.Split)
	var rs []split.Route
	for _, r := range nm.Routes {
		if _, ok := v.peers[r.Connector]; ok {
			rs = append(rs, split.Route{Prefix: r.Prefix, Connector: r.Connector})
		}
	}
	v.routed = rs
	v.guards = e.guards(ctx, s, nm)
	lans, err := e.cfg.Platform.LocalPrefixes()
	if err != nil {
		e.log.Warn("reading local prefixes", "err", err)
	}
	p, _ := e.loadPrefs()
	if p.LANWins {
		for _, l := range lans {
			v.guards = append(v.guards, split.Guard{Prefix: l, Reason: "this machine's LAN, which wins (warren set --lan-wins=false to let the tunnel win)"})
		}
	}
	v.result = split.Compute(v.policy, rs, v.guards)
	v.tunnel = v.result.TunnelPrefixes()
	v.install, v.warnings = winOverLANs(v.result, lans, v.guards)
	if p.LANWins {
		for _, d := range v.result.Bypass {
			for _, l := range lans {
				if d.Prefix.Overlaps(l) {
					v.warnings = append(v.warnings, fmt.Sprintf("route %v via %s overlaps this machine's LAN %v: the LAN wins (lan-wins is set)", d.Prefix, d.Connector, l))
				}
			}
		}
	}
	return v
}

// winOverLANs returns the routes to install so that tunnelled prefixes
// win over overlapping local LANs, and a warning for each overlap. A
// connected LAN route is as specific as the LAN, so where a tunnelled
// prefix covers a whole LAN the LAN's two halves are installed as well
// (less the guards, so the default gateway stays local).
func winOverLANs(res split.Result, lans []netip.Prefix, guards []split.Guard) ([]netip.Prefix, []string) {
	install := res.TunnelPrefixes()
	var warnings []string
	warned := map[[2]netip.Prefix]bool{}
	for _, d := range res.Tunnel {
		for _, l := range lans {
			if !d.Prefix.Overlaps(l) {
				continue
			}
			for _, r := range d.Routes {
				if r.Overlaps(l) && !warned[[2]netip.Prefix{r, l}] {
					warned[[2]netip.Prefix{r, l}] = true
					warnings = append(warnings, fmt.Sprintf("route %v via %s overlaps this machine's LAN %v: the tunnel wins (warren set --lan-wins lets the LAN win)", r, d.Connector, l))
				}
			}
			if d.Prefix.Bits() > l.Bits() || l.Bits() == l.Addr().BitLen() {
				continue // more specific already, or nothing to split
			}
			for _, half := range halves(l) {
				hs := split.Compute(split.Policy{Mode: split.ModeInclude, Include: []split.Entry{{Prefix: half}}},
					[]split.Route{{Prefix: half, Connector: d.Connector}}, guards)
				install = append(install, hs.TunnelPrefixes()...)
			}
		}
	}
	routes.SortPrefixes(install)
	return slices.Compact(install), warnings
}

// halves splits p into its two subprefixes one bit longer.
func halves(p netip.Prefix) [2]netip.Prefix {
	bits := p.Bits() + 1
	lo := netip.PrefixFrom(p.Addr(), bits)
	b := p.Addr().AsSlice()
	b[(bits-1)/8] |= 0x80 >> ((bits - 1) % 8)
	hiAddr, _ := netip.AddrFromSlice(b)
	return [2]netip.Prefix{lo, netip.PrefixFrom(hiAddr, bits)}
}

// guards are the hard guards: the coordinator, the relay and the default
// gateways never enter the tunnel.
func (e *Engine) guards(ctx context.Context, s *session, nm *wire.NetMap) []split.Guard {
	var gs []split.Guard
	add := func(a netip.Addr, reason string) {
		if a.IsValid() {
			a = a.Unmap()
			gs = append(gs, split.Guard{Prefix: netip.PrefixFrom(a, a.BitLen()), Reason: reason})
		}
	}
	for _, a := range coordinatorAddrs(ctx, s.id.URL) {
		add(a, "coordinator address")
	}
	if ap, err := relayAddr(ctx, nm.Relay.Endpoint); err == nil {
		add(ap.Addr(), "relay address")
	}
	gws, err := e.cfg.Platform.DefaultGateways()
	if err != nil {
		e.log.Warn("reading default gateways", "err", err)
	}
	for _, gw := range gws {
		add(gw, "default gateway")
	}
	return gs
}

// policyOf converts the coordinator's policy; a netmap without one gets
// the default.
func policyOf(p wire.SplitPolicy) split.Policy {
	if p.Mode == "" {
		return split.DefaultPolicy()
	}
	out := split.Policy{Mode: split.Mode(p.Mode)}
	for _, e := range p.Include {
		out.Include = append(out.Include, split.Entry{Prefix: e.Prefix, Comment: e.Comment, Builtin: e.Builtin})
	}
	for _, e := range p.Exclude {
		out.Exclude = append(out.Exclude, split.Entry{Prefix: e.Prefix, Comment: e.Comment, Builtin: e.Builtin})
	}
	return out
}
