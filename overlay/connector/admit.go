package connector

import (
	"fmt"
	"net/netip"

	"github.com/warrennet/warren/netstack"
	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/policy"
	"github.com/warrennet/warren/routes"
)

// admission is what admit decides flows against: the last applied
// netmap's clients, served prefixes and policy, and the connector host's
// own addresses. It is immutable; install swaps in a new one.
type admission struct {
	version uint64
	served  *routes.Table
	// proxy holds the served prefixes whose route asks for a PROXY v2
	// header.
	proxy map[netip.Prefix]bool
	// hostOK holds the served prefixes whose route lets flows reach the
	// connector host's own addresses (--allow-connector-host).
	hostOK map[netip.Prefix]bool
	// enforced: a policy document is in force, and each client reaches
	// only what its grants allow. Otherwise every client reaches every
	// served destination.
	enforced bool
	// rules are the texts of the rules the grants name, by index.
	rules   map[int]string
	clients map[netip.Addr]client // by overlay address
	// host holds the connector host's own addresses, served only through
	// a route in hostOK.
	host map[netip.Addr]bool
}

// client is an enrolled client as admission sees it.
type client struct {
	name, user string
	// grants decides the client's flows when the policy is enforced; a
	// client without grants reaches nothing.
	grants *policy.Matcher
}

// noAdmission admits nothing: the connector's state before its first
// netmap.
var noAdmission = &admission{clients: map[netip.Addr]client{}}

// newAdmission builds the admission state of nm, for a connector host
// whose own addresses are host.
func newAdmission(nm *wire.NetMap, host []netip.Addr) (*admission, error) {
	a := &admission{
		version:  nm.Version,
		proxy:    map[netip.Prefix]bool{},
		hostOK:   map[netip.Prefix]bool{},
		enforced: nm.Policy.Enforced,
		rules:    map[int]string{},
		clients:  map[netip.Addr]client{},
		host:     map[netip.Addr]bool{},
	}
	var entries []routes.Entry
	for _, r := range nm.Routes {
		if r.Connector == nm.Self.Name {
			entries = append(entries, routes.Entry{Prefix: r.Prefix, Owner: r.Connector})
			if r.ProxyProtocol {
				a.proxy[r.Prefix] = true
			}
			if r.AllowConnectorHost {
				a.hostOK[r.Prefix] = true
			}
		}
	}
	served, err := routes.NewTable(entries)
	if err != nil {
		return nil, fmt.Errorf("building the served table: %w", err)
	}
	a.served = served
	for _, r := range nm.Policy.Rules {
		a.rules[r.Index] = r.Text
	}
	for _, p := range nm.Peers {
		if p.Role != wire.RoleClient {
			continue
		}
		cl := client{name: p.Name, user: p.User}
		if a.enforced {
			cl.grants = policy.NewMatcher(p.Grants)
		}
		a.clients[p.Address] = cl
	}
	for _, h := range host {
		a.host[h.Unmap().WithZone("")] = true
	}
	return a, nil
}

// decision is admit's answer for one flow.
type decision struct {
	allow bool
	// rule is the allowing rule's index; 0 for a denial, or when no
	// policy is enforced.
	rule int
	// reason says the decision in one line.
	reason string
	// client is the flow's source, if it is an enrolled client.
	client client
	// proxy: the destination's route asks for a PROXY v2 header.
	proxy bool
}

// admit decides whether the connector serves f. In order: the source must
// be an enrolled client (WireGuard has already checked the source address
// against the peer's key); the destination must pass the guard
// (routes.NeverServed); it must lie in a prefix this connector serves,
// and be none of the connector host's own addresses unless that prefix's
// route allows them (--allow-connector-host); and when a policy is
// enforced, one of the client's grants must allow it.
func admit(a *admission, f netstack.Flow) decision {
	cl, ok := a.clients[f.Src.Addr()]
	if !ok {
		return decision{reason: fmt.Sprintf("denied: source %v is not an enrolled client", f.Src.Addr())}
	}
	dst := f.Dst.Addr()
	if why := routes.NeverServed(dst); why != "" {
		return decision{client: cl, reason: fmt.Sprintf("denied: %v is never served (%s)", dst, why)}
	}
	route, ok := a.served.Lookup(dst)
	if isHost(a.host, dst) && (!ok || !a.hostOK[route.Prefix]) {
		return decision{client: cl, reason: fmt.Sprintf("denied: %v is the connector host's own address, and no route to it allows that (--allow-connector-host)", dst)}
	}
	if !ok {
		return decision{client: cl, reason: fmt.Sprintf("denied: %v is outside the prefixes this connector serves", dst)}
	}
	d := decision{client: cl, proxy: a.proxy[route.Prefix]}
	if !a.enforced {
		d.allow = true
		d.reason = "allowed: no policy is set, so every client reaches every routed destination"
		return d
	}
	proto := wireProto(f.Proto)
	dest := policy.Dest{Addr: dst, Port: f.Dst.Port(), Proto: proto}
	rule, ok := cl.grants.Allow(dst, f.Dst.Port(), proto)
	if !ok {
		who := cl.user
		if who == "" {
			who = cl.name + " (a client without a user)"
		}
		d.reason = fmt.Sprintf("denied by policy: no rule lets %s reach %v", who, dest)
		return d
	}
	d.allow, d.rule = true, rule
	d.reason = "allowed by " + wire.RuleName(rule) // "rule 3", "ssh rule 1"
	if text := a.rules[rule]; text != "" {
		d.reason += ": " + text
	}
	return d
}

// wireProto names a flow's protocol as policies do.
func wireProto(p netstack.Proto) wire.Proto {
	switch p {
	case netstack.ProtoTCP:
		return wire.ProtoTCP
	case netstack.ProtoUDP:
		return wire.ProtoUDP
	case netstack.ProtoICMP:
		return wire.ProtoICMP
	}
	return wire.Proto(p.String())
}
