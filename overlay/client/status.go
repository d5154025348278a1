package client

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/warrennet/warren/overlay/ctl"
	"github.com/warrennet/warren/overlay/wire"
)

// staleHandshake is how old a handshake may be before a route is reported
// as not live: WireGuard rekeys every two minutes while traffic flows and
// keepalives run every 25 s.
const staleHandshake = 3 * time.Minute

// Status implements ctl.Backend.
func (e *Engine) Status(ctx context.Context) ctl.Status {
	st := ctl.Status{State: ctl.StateDown, Mode: e.mode(), Peers: []ctl.PeerStatus{}, Routes: []ctl.RouteStatus{}}
	if e.cfg.Proxies != nil {
		st.Proxies = e.cfg.Proxies()
	}
	if id, err := e.dir.LoadIdentity(); err == nil {
		st.Enrolled, st.Node, st.Coordinator.URL = true, id.Node, id.URL
	}
	e.mu.Lock()
	s := e.running
	st.Coordinator.Connected = e.connected
	st.Coordinator.Error = e.coordErr
	st.Coordinator.Since = e.since
	st.Denials = slices.Clone(e.denials)
	e.mu.Unlock()
	if s == nil {
		st.SSH = e.sshStatus(nil)
		return st
	}
	if !e.cfg.Userspace {
		st.Interface = e.cfg.Interface
	}
	v := s.currentView()
	st.SSH = e.sshStatus(v)
	if v == nil {
		st.State = ctl.StateStarting
		return st
	}
	st.State = ctl.StateUp
	st.NetMapVersion = v.version
	if v.self.User != "" {
		st.Node.User = v.self.User // as the coordinator knows the node now
	}
	st.Policy = ctl.PolicyStatus{Mode: policyMode(v.access), Grants: len(v.access.Grants)}
	fs := s.filter.Stats()
	st.Inbound = ctl.Inbound{Flows: fs.Flows, Dropped: fs.Dropped}
	relayStatus := s.relay.Status()
	if relayStatus.Relay.IsValid() {
		st.Relay = ctl.Relay{Endpoint: relayStatus.Relay.String(), Connected: relayStatus.Connected}
		if relayStatus.Observed.IsValid() {
			st.Relay.Observed = relayStatus.Observed.String()
		}
		if !relayStatus.LastRefusalAt.IsZero() && relayStatus.LastRefusalAt.After(relayStatus.LastAck) {
			st.Relay.Refusal = fmt.Sprintf("%v (%v ago)", relayStatus.LastRefusal, time.Since(relayStatus.LastRefusalAt).Round(time.Second))
		}
	}

	stats := map[wire.Key]ctl.PeerStatus{}
	if ps, err := s.dev.Stats(); err == nil {
		for _, p := range ps {
			path := "none"
			if p.Endpoint != "" {
				path = "relay"
				if d := s.relay.Direct(p.PublicKey); d.IsValid() {
					path = "direct " + d.String()
				}
			}
			stats[p.PublicKey] = ctl.PeerStatus{Path: path, LastHandshake: p.LastHandshake, RxBytes: p.RxBytes, TxBytes: p.TxBytes}
		}
	}
	now := time.Now()
	for _, r := range v.routes {
		p, known := v.peers[r.Connector]
		rst := ctl.RouteStatus{Prefix: r.Prefix, Connector: r.Connector}
		tunnelled := false
		for _, d := range v.result.Tunnel {
			if d.Prefix.Overlaps(r.Prefix) && d.Connector == r.Connector {
				tunnelled = true
			}
		}
		hs := stats[p.PublicKey].LastHandshake
		switch {
		case !known:
			rst.Reason = fmt.Sprintf("connector %s is not enrolled", r.Connector)
		case !tunnelled:
			rst.Reason = "not tunnelled: " + bypassReason(v, r.Prefix)
		case !p.Online:
			rst.Reason = fmt.Sprintf("connector %s is offline", r.Connector)
		case hs.IsZero() && !st.Relay.Connected:
			rst.Reason = fmt.Sprintf("waiting for a handshake with connector %s: the relay has not confirmed this node yet", r.Connector)
		case hs.IsZero():
			rst.Reason = fmt.Sprintf("waiting for a handshake with connector %s", r.Connector)
		case now.Sub(hs) > staleHandshake:
			rst.Reason = fmt.Sprintf("no handshake with connector %s for %v", r.Connector, now.Sub(hs).Round(time.Second))
		default:
			rst.Live = true
			rst.Reason = fmt.Sprintf("via %s (%s)", r.Connector, stats[p.PublicKey].Path)
		}
		st.Routes = append(st.Routes, rst)
	}
	for _, name := range slices.Sorted(maps.Keys(v.peers)) {
		p := v.peers[name]
		ps := stats[p.PublicKey]
		ps.Name, ps.Role, ps.Address, ps.Online = p.Name, p.Role, p.Address, p.Online
		if ps.Path == "" {
			ps.Path = "none"
		}
		st.Peers = append(st.Peers, ps)
	}
	st.Warnings = append(st.Warnings, v.result.Warnings...)
	st.Warnings = append(st.Warnings, v.warnings...)
	return st
}

// bypassReason explains why some of prefix stays out of the tunnel.
func bypassReason(v *view, prefix netip.Prefix) string {
	for _, d := range v.result.Bypass {
		if d.Route == prefix || d.Prefix.Overlaps(prefix) {
			return d.Reason
		}
	}
	return "excluded by the split-tunnel policy"
}
