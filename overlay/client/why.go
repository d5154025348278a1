package client

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/warrennet/warren/overlay/ctl"
	"github.com/warrennet/warren/split"
)

// Why implements ctl.Backend: the split-tunnel decision for one address,
// from the netmap applied now, whether it shadows a local LAN, and, for a
// tunnelled address, what the access policy lets this node reach there
// (the decision for one flow when q names one).
func (e *Engine) Why(ctx context.Context, q ctl.WhyQuery) (ctl.Why, error) {
	ip := q.IP
	if q.Host != "" && !ip.IsValid() {
		addrs, err := e.resolve(ctx, q.Host)
		if err != nil {
			return ctl.Why{}, err
		}
		ip = addrs[0]
	}
	e.mu.Lock()
	s := e.running
	e.mu.Unlock()
	if s == nil {
		return ctl.Why{}, errors.New("the tunnel is down: run warren up")
	}
	v := s.currentView()
	if v == nil {
		return ctl.Why{}, errors.New("no netmap applied yet: see warren status")
	}
	ex := split.Explain(v.policy, v.routed, v.guards, ip)
	w := ctl.Why{IP: ex.IP, Tunnelled: ex.Tunnelled, Reason: ex.Reason, PolicyMode: policyMode(v.access)}
	if ex.Route != nil {
		w.Route, w.Connector = ex.Route.Prefix, ex.Route.Connector
	}
	if ex.Entry != nil {
		w.Entry = ex.Entry.Prefix
	}
	if lan, ok := e.localLAN(ex.IP); ok {
		if ex.Tunnelled {
			w.LocalLAN = fmt.Sprintf("%s is also on this machine's LAN %s: the tunnel wins", ex.IP, lan)
		} else {
			w.LocalLAN = fmt.Sprintf("%s is on this machine's LAN %s, which carries it", ex.IP, lan)
		}
	}
	// The policy applies at the connectors: to tunnelled traffic only.
	if ex.Tunnelled {
		if port, proto, ok := q.Flow(); ok {
			d := decide(v.access, v.self, ex.IP, port, proto)
			w.Policy, w.PolicyReason = &d, d.Reason
		} else {
			w.PolicyReason = reachable(v.access, v.self, ex.IP)
		}
	}
	return w, nil
}

// localLAN finds the directly connected prefix holding ip, if any.
func (e *Engine) localLAN(ip netip.Addr) (netip.Prefix, bool) {
	lans, err := e.cfg.Platform.LocalPrefixes()
	if err != nil {
		e.log.Debug("reading local prefixes", "err", err)
		return netip.Prefix{}, false
	}
	for _, p := range lans {
		if p.Contains(ip) {
			return p, true
		}
	}
	return netip.Prefix{}, false
}
