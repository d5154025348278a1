package coord

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/warrennet/warren/overlay/coord/store"
	"github.com/warrennet/warren/overlay/wire"
)

// SetDNS adds a split-DNS domain, or replaces its servers: names under
// req.Domain are to be resolved by req.Servers, through the tunnel. Each
// server must sit inside a routed prefix, or its queries would reach no
// connector.
func (c *Coordinator) SetDNS(ctx context.Context, req wire.SetDNSRequest) (wire.DNSDomain, error) {
	domain, err := wire.CanonicalDomain(req.Domain)
	if err != nil {
		return wire.DNSDomain{}, invalid(err)
	}
	if err := c.checkNotHostSuffix(domain); err != nil {
		return wire.DNSDomain{}, err
	}
	servers, err := parseDNSServers(req.Servers)
	if err != nil {
		return wire.DNSDomain{}, err
	}
	d := wire.DNSDomain{Domain: domain, Servers: servers, UpdatedAt: c.now().UTC()}

	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	s := c.snap.Load()
	for _, a := range servers {
		if !routed(s.routes, a) {
			return wire.DNSDomain{}, errorf(wire.CodeInvalid, "dns server %s is not inside any routed prefix: its queries would not reach a connector (warren routes add PREFIX --connector NAME)", a)
		}
	}
	version, err := c.store.SetDNS(ctx, d)
	if err != nil {
		return wire.DNSDomain{}, fmt.Errorf("storing dns: %w", err)
	}
	var ds []wire.DNSDomain
	if i, found := slices.BinarySearchFunc(s.dns, d, compareDNS); found {
		ds = replaceAt(s.dns, i, d)
	} else {
		ds = insertSorted(s.dns, d, compareDNS)
	}
	next, err := s.with(version, nil, nil, nil, nil, nil)
	if err != nil {
		return wire.DNSDomain{}, err
	}
	next.dns = ds
	c.publish(next)
	c.log.Info("dns domain set", "domain", d.Domain, "servers", d.Servers)
	return d, nil
}

// checkNotHostSuffix refuses the host suffix and names under it: the
// clients answer those from the named hosts.
func (c *Coordinator) checkNotHostSuffix(domain string) error {
	if domain == c.hostSuffix || strings.HasSuffix(domain, "."+c.hostSuffix) {
		return errorf(wire.CodeInvalid, "%s is under the host suffix %s, whose names are the named hosts (warren hosts add NAME IP)", domain, c.hostSuffix)
	}
	return nil
}

// parseDNSServers parses 1 to wire.MaxDNSServers distinct server
// addresses, in order.
func parseDNSServers(in []string) ([]netip.Addr, error) {
	switch {
	case len(in) == 0:
		return nil, errorf(wire.CodeInvalid, "no dns server given (--server IP)")
	case len(in) > wire.MaxDNSServers:
		return nil, errorf(wire.CodeInvalid, "%d dns servers given; at most %d", len(in), wire.MaxDNSServers)
	}
	out := make([]netip.Addr, 0, len(in))
	for _, t := range in {
		a, err := netip.ParseAddr(strings.TrimSpace(t))
		if err != nil || a.Zone() != "" {
			return nil, errorf(wire.CodeInvalid, "dns server %q is not an IP address (for example 192.168.0.53)", t)
		}
		a = a.Unmap()
		if a.IsUnspecified() {
			return nil, errorf(wire.CodeInvalid, "dns server %s is the unspecified address, not a server", a)
		}
		if slices.Contains(out, a) {
			return nil, errorf(wire.CodeInvalid, "dns server %s is given twice", a)
		}
		out = append(out, a)
	}
	return out, nil
}

// routed says whether a sits inside one of rs' prefixes.
func routed(rs []wire.Route, a netip.Addr) bool {
	for _, r := range rs {
		if r.Prefix.Contains(a) {
			return true
		}
	}
	return false
}

// dnsStranded returns a DNS domain and server that rs no longer routes,
// if any: removing a route must not leave a server its queries cannot
// reach.
func (s *snapshot) dnsStranded(rs []wire.Route) (wire.DNSDomain, netip.Addr, bool) {
	for _, d := range s.dns {
		for _, a := range d.Servers {
			if !routed(rs, a) {
				return d, a, true
			}
		}
	}
	return wire.DNSDomain{}, netip.Addr{}, false
}

// RemoveDNS removes a split-DNS domain, given as the admin typed it.
func (c *Coordinator) RemoveDNS(ctx context.Context, domain string) error {
	d, err := wire.CanonicalDomain(domain)
	if err != nil {
		return invalid(err)
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	s := c.snap.Load()
	i, found := slices.BinarySearchFunc(s.dns, wire.DNSDomain{Domain: d}, compareDNS)
	if !found {
		return errorf(wire.CodeNotFound, "no dns domain %s (see: warren dns ls)", d)
	}
	version, err := c.store.RemoveDNS(ctx, d)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(wire.CodeNotFound, "no dns domain %s (see: warren dns ls)", d)
	}
	if err != nil {
		return fmt.Errorf("removing dns: %w", err)
	}
	next, err := s.with(version, nil, nil, nil, nil, nil)
	if err != nil {
		return err
	}
	next.dns = deleteAt(s.dns, i)
	c.publish(next)
	c.log.Info("dns domain removed", "domain", d)
	return nil
}

// DNS lists the split-DNS domains, sorted by domain.
func (c *Coordinator) DNS() []wire.DNSDomain {
	return append([]wire.DNSDomain{}, c.snap.Load().dns...)
}

// HostSuffix is the domain under which clients resolve the named hosts.
func (c *Coordinator) HostSuffix() string { return c.hostSuffix }

func compareDNS(a, b wire.DNSDomain) int { return cmp.Compare(a.Domain, b.Domain) }
