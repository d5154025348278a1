package policy

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/gaissmai/bart"
	"github.com/warrennet/warren/overlay/wire"
)

// Matcher decides flows against a fixed list of grants, fast: the
// connector builds one per client from the grants in its netmap and asks
// it about every new flow. It is immutable; any number of goroutines may
// use it at once.
type Matcher struct {
	// lpm maps each grant prefix to the grants of that prefix and of every
	// prefix containing it, sorted by rule: the prefixes containing an
	// address form a chain, so the longest match holds every grant that
	// can apply to the address.
	lpm bart.Table[[]mgrant]
	n   int
}

// mgrant is a grant without its prefix.
type mgrant struct {
	ports wire.PortRange
	proto wire.Proto
	rule  int
}

// NewMatcher builds a matcher over grants, which it does not keep. Grants
// with an invalid prefix are ignored. A matcher over no grants denies
// everything.
func NewMatcher(grants []wire.Grant) *Matcher {
	var own bart.Table[[]mgrant]
	n := 0
	for _, g := range grants {
		if !g.Prefix.IsValid() {
			continue
		}
		n++
		own.Modify(g.Prefix.Masked(), func(v []mgrant, _ bool) ([]mgrant, bool) {
			return append(v, mgrant{g.Ports, g.Proto, g.Rule}), false
		})
	}
	m := &Matcher{n: n}
	for p := range own.All() {
		var all []mgrant
		for _, v := range own.Supernets(p) {
			all = append(all, v...)
		}
		slices.SortStableFunc(all, func(a, b mgrant) int { return cmp.Compare(a.rule, b.rule) })
		m.lpm.Insert(p, slices.Clip(all))
	}
	return m
}

// Allow reports whether a grant lets a flow to dst:port over proto (tcp,
// udp or icmp; ports do not matter for icmp) through, and the lowest rule
// of the grants that do. As in Decide, an address with a zone matches
// nothing and an IPv4-mapped IPv6 address is IPv6. A nil m denies.
func (m *Matcher) Allow(dst netip.Addr, port uint16, proto wire.Proto) (rule int, ok bool) {
	if m == nil || dst.Zone() != "" {
		return 0, false
	}
	gs, found := m.lpm.Lookup(dst)
	if !found {
		return 0, false
	}
	for _, g := range gs {
		if allows(g.ports, g.proto, port, proto) {
			return g.rule, true
		}
	}
	return 0, false
}

// Len returns the number of grants m holds.
func (m *Matcher) Len() int {
	if m == nil {
		return 0
	}
	return m.n
}
