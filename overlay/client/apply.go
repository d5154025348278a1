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
	// install is what goes into the kernel (split.Local.Install): tunnel,
	// plus the halves of any local LAN a tunnelled prefix covers.
	install []netip.Prefix
	// warnings are this machine's LAN overlaps (split.Local.Warnings).
	warnings []string
	policy   split.Policy
	routed   []split.Route
	// guards are the hard guards and, when the LAN wins, the LANs: what
	// result was computed with, and what Why explains with.
	guards []split.Guard
	// access is the access policy as the netmap states it.
	access wire.NetMapPolicy
	// hard are the coordinator's and the relay's addresses the guards
	// were built from.
	hard hardAddrs
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
	hard := e.addrs.resolveHard(ctx, s.id.URL, nm.Relay.Endpoint)
	v := e.compute(nm, hard)
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
		addr, err := hard.relayAddr()
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
		Interface: s.iface,
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
func (e *Engine) compute(nm *wire.NetMap, hard hardAddrs) *view {
	v := &view{version: nm.Version, self: nm.Self, routes: nm.Routes, access: nm.Policy, hard: hard, peers: map[string]wire.Peer{}, byKey: map[wire.Key]wire.Peer{}}
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
	guards := e.guards(hard)
	lans, err := e.cfg.Platform.LocalPrefixes()
	if err != nil {
		e.log.Warn("reading local prefixes", "err", err)
	}
	p, _ := e.loadPrefs()
	loc := split.ComputeLocal(v.policy, rs, guards, lans, p.LANWins)
	v.result, v.guards, v.install, v.warnings = loc.Result, loc.Guards, loc.Install, loc.Warnings
	v.warnings = append(v.warnings, hard.warnings()...)
	v.tunnel = v.result.TunnelPrefixes()
	return v
}

// guards are the hard guards: the coordinator, the relay and the default
// gateways never enter the tunnel. A host whose lookup failed is guarded
// at its last known addresses, loudly; one never resolved cannot be.
func (e *Engine) guards(hard hardAddrs) []split.Guard {
	var gs []split.Guard
	add := func(a netip.Addr, reason string) {
		if a.IsValid() {
			a = a.Unmap()
			gs = append(gs, split.Guard{Prefix: netip.PrefixFrom(a, a.BitLen()), Reason: reason})
		}
	}
	for _, a := range hard.coord.addrs {
		add(a, "coordinator address")
	}
	if hard.relay != nil {
		for _, a := range hard.relay.addrs {
			add(a, "relay address")
		}
	}
	for _, w := range hard.warnings() {
		e.log.Warn(w)
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
