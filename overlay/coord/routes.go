package coord

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/warrennet/warren/overlay/coord/store"
	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/routes"
)

// AddRoute routes a prefix to a connector. Adding the same prefix to the
// same connector again updates the comment (an empty one keeps the old)
// and sets PROXY v2 and the connector host's addresses on or off as the
// request says. A new prefix that would take traffic from another
// connector (it lies inside a shorter route of that connector's) needs
// req.Force; a more specific prefix for the same connector does not.
func (c *Coordinator) AddRoute(ctx context.Context, req wire.AddRouteRequest) (wire.Route, error) {
	p, err := routes.ParseRoutable(req.Prefix)
	if err != nil {
		return wire.Route{}, invalid(err)
	}
	if err := wire.ValidateComment(req.Comment); err != nil {
		return wire.Route{}, invalid(err)
	}

	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	s := c.snap.Load()
	if err := s.checkConnector(req.Connector); err != nil {
		return wire.Route{}, err
	}
	if err := s.table.CheckAdd(p, req.Connector); err != nil {
		return wire.Route{}, errorf(wire.CodeConflict, "%s; remove it first with: warren routes rm %s", err, p)
	}
	from, takes := s.table.TakesFrom(p, req.Connector)
	if takes && !req.Force {
		return wire.Route{}, errorf(wire.CodeConflict, "%v would take traffic from route %v (connector %q) to connector %q; add --force to move it",
			p, from.Prefix, from.Owner, req.Connector)
	}
	r := wire.Route{Prefix: p, Connector: req.Connector, Comment: req.Comment, CreatedAt: c.now().UTC(),
		ProxyProtocol: req.ProxyProtocol, AllowConnectorHost: req.AllowConnectorHost}
	i, found := slices.BinarySearchFunc(s.routes, r, compareRoutes)
	if found {
		r.CreatedAt = s.routes[i].CreatedAt
		if req.Comment == "" {
			r.Comment = s.routes[i].Comment
		}
		if r == s.routes[i] {
			return r, nil
		}
	}
	version, err := c.store.AddRoute(ctx, r)
	if err != nil {
		return wire.Route{}, fmt.Errorf("storing route: %w", err)
	}
	rs := insertSorted(s.routes, r, compareRoutes)
	if found {
		rs = replaceAt(s.routes, i, r)
	}
	next, err := s.with(version, nil, nil, rs, nil, nil)
	if err != nil {
		return wire.Route{}, err
	}
	c.publish(next)
	c.log.Info("route added", "prefix", p, "connector", req.Connector, "proxy_protocol", r.ProxyProtocol, "allow_connector_host", r.AllowConnectorHost)
	if takes {
		c.log.Warn("route takes traffic from another connector (forced)", "prefix", p, "connector", req.Connector, "from_route", from.Prefix, "from_connector", from.Owner)
	}
	return r, nil
}

// checkConnector reports why name cannot serve a route, or nil.
func (s *snapshot) checkConnector(name string) error {
	if name == "" {
		return errorf(wire.CodeInvalid, "no connector given; add --connector NAME")
	}
	if err := wire.ValidateName(name); err != nil {
		return errorf(wire.CodeInvalid, "connector %v", err)
	}
	n, ok := s.nodeByName(name)
	if ok && n.Role == wire.RoleConnector {
		return nil
	}
	if ok {
		return errorf(wire.CodeInvalid, "%q is a %s, not a connector", name, n.Role)
	}
	names := s.connectorNames()
	if len(names) == 0 {
		return errorf(wire.CodeNotFound, "unknown connector %q: no connector is enrolled yet (create one with: warren token create --role connector --name %s)", name, name)
	}
	return errorf(wire.CodeNotFound, "unknown connector %q (enrolled connectors: %s)", name, strings.Join(names, ", "))
}

// RemoveRoute removes the route with exactly this prefix, given as the
// admin typed it. It refuses while a split-DNS server sits inside no
// other route: its queries would reach no connector.
func (c *Coordinator) RemoveRoute(ctx context.Context, prefix string) error {
	p, err := routes.ParsePrefix(prefix)
	if err != nil {
		return invalid(err)
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	s := c.snap.Load()
	i, found := slices.BinarySearchFunc(s.routes, wire.Route{Prefix: p}, compareRoutes)
	if !found {
		return errorf(wire.CodeNotFound, "no route for %s (see: warren routes ls)", p)
	}
	rest := deleteAt(s.routes, i)
	if d, a, stranded := s.dnsStranded(rest); stranded {
		return errorf(wire.CodeConflict, "dns server %s of %s is inside no other route: its queries would reach no connector; remove the domain first (warren dns rm %s) or give it other servers (warren dns add %s --server IP)", a, d.Domain, d.Domain, d.Domain)
	}
	version, err := c.store.RemoveRoute(ctx, p)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(wire.CodeNotFound, "no route for %s (see: warren routes ls)", p)
	}
	if err != nil {
		return fmt.Errorf("removing route: %w", err)
	}
	next, err := s.with(version, nil, nil, rest, nil, nil)
	if err != nil {
		return err
	}
	c.publish(next)
	c.log.Info("route removed", "prefix", p)
	return nil
}

// Routes lists every route, sorted by prefix.
func (c *Coordinator) Routes() []wire.Route {
	return append([]wire.Route{}, c.snap.Load().routes...)
}

// LookupRoute says which route and connector would carry ip, or why none.
func (c *Coordinator) LookupRoute(ip string) (wire.RouteLookup, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(ip))
	if err != nil || a.Zone() != "" {
		return wire.RouteLookup{}, errorf(wire.CodeInvalid, "%q is not an IP address", ip)
	}
	a = a.Unmap()
	s := c.snap.Load()
	out := wire.RouteLookup{IP: a}
	e, ok := s.table.Lookup(a)
	if !ok {
		out.Reason = fmt.Sprintf("no route covers %s; add one with: warren routes add CIDR --connector NAME", a)
		return out, nil
	}
	i, _ := slices.BinarySearchFunc(s.routes, wire.Route{Prefix: e.Prefix}, compareRoutes)
	r := s.routes[i]
	out.Route = &r
	n, enrolled := s.nodeByName(r.Connector)
	switch {
	case !enrolled:
		out.Reason = fmt.Sprintf("%s is in %s, routed to connector %s, which is not enrolled: traffic has nowhere to go", a, r.Prefix, r.Connector)
	case c.online(n.ID):
		out.Online = true
		out.Reason = fmt.Sprintf("%s is in %s, served by connector %s (online)", a, r.Prefix, r.Connector)
	default:
		seen := "never connected"
		if t := c.lastSeen(n); !t.IsZero() {
			seen = "last seen " + c.now().Sub(t).Round(time.Second).String() + " ago"
		}
		out.Reason = fmt.Sprintf("%s is in %s, served by connector %s, which is offline (%s)", a, r.Prefix, r.Connector, seen)
	}
	return out, nil
}
