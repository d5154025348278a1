package dnsres

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// Action is what the resolver does with a name.
type Action int

const (
	// Invalid: the name is not a domain name (only Route sees one; a query
	// off the wire always carries a valid name).
	Invalid Action = iota
	// Answer: a host name, or the reverse name of a host's address,
	// answered by the resolver itself.
	Answer
	// NotFound: a name under the host suffix that is no host: NXDOMAIN.
	NotFound
	// Forward: a pushed domain, sent to its servers through the Dialer.
	Forward
	// Fallback: anything else, sent to the system's previous resolvers.
	Fallback
)

func (a Action) String() string {
	switch a {
	case Answer:
		return "answer"
	case NotFound:
		return "nxdomain"
	case Forward:
		return "forward"
	case Fallback:
		return "fallback"
	}
	return "invalid"
}

// Decision is where a name goes, for the resolver and for `warren why`.
type Decision struct {
	Action  Action
	Name    string           // the name, lowercase, fully qualified
	Hosts   []string         // Answer: the host(s) (several for a shared address's PTR)
	Domain  string           // Forward: the pushed domain that matched, without the trailing dot
	Servers []netip.AddrPort // Forward: the domain's servers; Fallback: the system's resolvers
}

func (d Decision) String() string {
	switch d.Action {
	case Answer:
		return fmt.Sprintf("%s: answered locally (host %s)", d.Name, strings.Join(d.Hosts, ", "))
	case NotFound:
		return fmt.Sprintf("%s: no such host (NXDOMAIN)", d.Name)
	case Forward:
		return fmt.Sprintf("%s: pushed domain %s, through the tunnel to %v", d.Name, d.Domain, d.Servers)
	case Fallback:
		return fmt.Sprintf("%s: the system's resolvers %v", d.Name, d.Servers)
	}
	return fmt.Sprintf("%q: not a domain name", d.Name)
}

// snapshot is a validated Config, indexed; immutable once built.
type snapshot struct {
	hosts    map[string]*hostEntry // "name." and "name.suffix." → host
	ptr      map[string][]string   // reverse name → host names (FQDN under the suffix), sorted
	ptrHosts map[string][]string   // reverse name → host names as configured, sorted
	suffix   string                // "suffix." or ""
	domains  map[string]domainEntry
	fallback []netip.AddrPort
}

type hostEntry struct {
	name string
	fqdn string // the name PTR answers with: NAME.SUFFIX. (NAME. without a suffix)
	a    []netip.Addr
	aaaa []netip.Addr
}

type domainEntry struct {
	name    string // as configured, lowercase
	servers []netip.AddrPort
}

const dnsPort = 53

func build(c Config) (*snapshot, error) {
	s := &snapshot{
		hosts:    map[string]*hostEntry{},
		ptr:      map[string][]string{},
		ptrHosts: map[string][]string{},
		domains:  map[string]domainEntry{},
	}
	if c.HostSuffix != "" {
		suf, err := checkName("host suffix", c.HostSuffix)
		if err != nil {
			return nil, err
		}
		s.suffix = suf
	}
	for _, h := range c.Hosts {
		n, err := checkName("host", h.Name)
		if err != nil {
			return nil, err
		}
		if len(h.Addrs) == 0 {
			return nil, invalid("host %q has no address", h.Name)
		}
		e := &hostEntry{name: strings.TrimSuffix(n, "."), fqdn: n}
		if s.suffix != "" {
			e.fqdn = n + s.suffix
		}
		for _, fq := range []string{n, e.fqdn} {
			if _, dup := s.hosts[fq]; dup {
				return nil, invalid("host %q named twice", h.Name)
			}
		}
		for _, a := range h.Addrs {
			if !a.IsValid() {
				return nil, invalid("host %q: invalid address", h.Name)
			}
			a = a.Unmap().WithZone("")
			if a.Is4() {
				e.a = append(e.a, a)
			} else {
				e.aaaa = append(e.aaaa, a)
			}
			rev, err := dns.ReverseAddr(a.String())
			if err != nil {
				return nil, invalid("host %q: reverse name of %v: %v", h.Name, a, err)
			}
			rev = asciiLower(rev)
			if !slices.Contains(s.ptr[rev], e.fqdn) {
				s.ptr[rev] = append(s.ptr[rev], e.fqdn)
				s.ptrHosts[rev] = append(s.ptrHosts[rev], e.name)
			}
		}
		s.hosts[n] = e
		s.hosts[e.fqdn] = e
	}
	for rev := range s.ptr {
		slices.Sort(s.ptr[rev])
		slices.Sort(s.ptrHosts[rev])
	}
	for _, d := range c.Domains {
		n, err := checkName("domain", d.Suffix)
		if err != nil {
			return nil, err
		}
		if _, dup := s.domains[n]; dup {
			return nil, invalid("domain %q pushed twice", d.Suffix)
		}
		if len(d.Servers) == 0 {
			return nil, invalid("domain %q has no server", d.Suffix)
		}
		e := domainEntry{name: strings.TrimSuffix(n, ".")}
		for _, a := range d.Servers {
			if !a.IsValid() {
				return nil, invalid("domain %q: invalid server address", d.Suffix)
			}
			e.servers = append(e.servers, netip.AddrPortFrom(a.Unmap(), dnsPort))
		}
		s.domains[n] = e
	}
	for _, ap := range c.Fallback {
		if !ap.IsValid() || ap.Port() == 0 {
			return nil, invalid("fallback resolver %v: want an address and a port", ap)
		}
		s.fallback = append(s.fallback, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
	}
	return s, nil
}

// route decides where name goes: a host's name or address (answered), a
// name under the host suffix (NXDOMAIN), the longest pushed domain that is
// the name or one of its ancestors (forwarded), else the fallback.
func (s *snapshot) route(name string) Decision {
	n, ok := canonical(name)
	if !ok {
		return Decision{Action: Invalid, Name: name}
	}
	d := Decision{Name: n}
	if h, ok := s.hosts[n]; ok {
		d.Action, d.Hosts = Answer, []string{h.name}
		return d
	}
	if hs, ok := s.ptrHosts[n]; ok {
		d.Action, d.Hosts = Answer, slices.Clone(hs)
		return d
	}
	if s.suffix != "" && isUnder(n, s.suffix) {
		d.Action = NotFound
		return d
	}
	// Walk up the labels from the name itself: the first match is the
	// longest. dns.Split knows escaped dots ("a\.b" is one label).
	for _, i := range dns.Split(n) {
		if e, ok := s.domains[n[i:]]; ok {
			d.Action, d.Domain, d.Servers = Forward, e.name, slices.Clone(e.servers)
			return d
		}
	}
	d.Action, d.Servers = Fallback, slices.Clone(s.fallback)
	return d
}

// isUnder reports whether the canonical name n is suffix or below it, on a
// label boundary.
func isUnder(n, suffix string) bool {
	for _, i := range dns.Split(n) {
		if n[i:] == suffix {
			return true
		}
	}
	return false
}
