package routes

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/gaissmai/bart"
)

// Entry is a routed prefix and the name of the connector that serves it.
type Entry struct {
	Prefix netip.Prefix
	Owner  string
}

// Table is an immutable longest-prefix-match table from prefixes to the
// connectors that serve them. Every prefix in it is canonical (as ParsePrefix
// returns) and has exactly one owner. It is never modified after NewTable
// returns, so any number of goroutines may read it at once; to change it,
// build a new one and swap it in. A nil *Table is an empty table.
type Table struct {
	lpm     bart.Table[Entry]
	entries []Entry // sorted by prefix (ComparePrefixes)
}

// NewTable builds a table from entries, which it does not keep. It fails when
// a prefix is not canonical (the error is ParsePrefix's for it, prefixed with
// the owner), when an owner is empty, or when a prefix appears twice, even
// with the same owner.
func NewTable(entries []Entry) (*Table, error) {
	es := slices.Clone(entries)
	for _, e := range es {
		if err := checkCanonical(e.Prefix); err != nil {
			return nil, fmt.Errorf("connector %q: %w", e.Owner, err)
		}
		if e.Owner == "" {
			return nil, fmt.Errorf("route %v has no connector", e.Prefix)
		}
	}
	// Stable, so a duplicate's owners are named in input order.
	slices.SortStableFunc(es, func(a, b Entry) int { return ComparePrefixes(a.Prefix, b.Prefix) })
	t := &Table{entries: es}
	for i, e := range es {
		if i > 0 && es[i-1].Prefix == e.Prefix {
			return nil, fmt.Errorf("route %v is listed twice (connectors %q and %q)", e.Prefix, es[i-1].Owner, e.Owner)
		}
		t.lpm.Insert(e.Prefix, e)
	}
	return t, nil
}

// Lookup returns the entry with the longest prefix that contains ip. The zone
// of an IPv6 address is ignored. An IPv4-mapped IPv6 address is an IPv6
// address here: it never matches an IPv4 prefix (call Unmap first to look up
// its IPv4 form). An invalid ip matches nothing.
func (t *Table) Lookup(ip netip.Addr) (Entry, bool) {
	if t == nil {
		return Entry{}, false
	}
	return t.lpm.Lookup(ip)
}

// Get returns the entry whose prefix is exactly p. A p that is not canonical
// matches nothing.
func (t *Table) Get(p netip.Prefix) (Entry, bool) {
	if t == nil || !p.IsValid() || p != p.Masked() {
		return Entry{}, false
	}
	return t.lpm.Get(p)
}

// Entries returns a copy of the table's entries, sorted by prefix
// (SortPrefixes order: IPv4 first, then address, then length).
func (t *Table) Entries() []Entry {
	if t == nil {
		return nil
	}
	return slices.Clone(t.entries)
}

// Len returns the number of entries.
func (t *Table) Len() int {
	if t == nil {
		return 0
	}
	return len(t.entries)
}

// CheckAdd reports whether owner may add p to the table. It returns an error
// wrapping ErrServedByOther when another owner has exactly p, nil when owner
// already has it (adding is idempotent) or when nobody does. A prefix inside,
// or covering, another owner's prefix is allowed: the longest prefix wins. A
// non-canonical p gets ParsePrefix's error for it. CheckAdd does not check
// reserved ranges; see CheckRoutable.
func (t *Table) CheckAdd(p netip.Prefix, owner string) error {
	if err := checkCanonical(p); err != nil {
		return err
	}
	if owner == "" {
		return fmt.Errorf("route %v has no connector", p)
	}
	if e, ok := t.Get(p); ok && e.Owner != owner {
		return newError(fmt.Sprintf("%v is already served by connector %q", p, e.Owner), ErrServedByOther)
	}
	return nil
}

// TakesFrom reports whose traffic adding p for owner would move: the entry
// with the longest prefix strictly covering p, when another owner has it.
// Its addresses in p (but those of longer entries inside p, which keep
// winning) go to owner once p is in the table. It reports nothing for a
// p already in the table, a p no entry covers, or a covering entry owner
// already has. p must be canonical.
func (t *Table) TakesFrom(p netip.Prefix, owner string) (Entry, bool) {
	if t == nil || !p.IsValid() || p.Bits() == 0 {
		return Entry{}, false
	}
	if _, ok := t.Get(p); ok {
		return Entry{}, false
	}
	parent := netip.PrefixFrom(p.Addr(), p.Bits()-1).Masked()
	_, e, ok := t.lpm.LookupPrefixLPM(parent)
	if !ok || e.Owner == owner {
		return Entry{}, false
	}
	return e, true
}
