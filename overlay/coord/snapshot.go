package coord

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/warrennet/warren/overlay/coord/store"
	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/routes"
)

// snapshot is one immutable view of the coordinator's state. A write builds
// a new snapshot and publishes it; the old one's changed channel is closed
// so every stream wakes and compares its netmap.
type snapshot struct {
	version uint64
	tokens  []store.Token // sorted by CreatedAt, then ID
	nodes   []store.Node  // sorted by Name
	routes  []wire.Route  // sorted canonically
	split   wire.SplitPolicy
	hosts   []wire.Host      // sorted by Name
	dns     []wire.DNSDomain // sorted by Domain
	// users are the people who logged in by single sign-on, sorted by
	// Email.
	users []store.User
	// sso says an identity provider is configured (for the policy:
	// a group no user is in yet is a warning, not an error).
	sso    bool
	policy policyState
	// policyDirty says the policy's inputs (users, hosts, routes) changed
	// since it was compiled; publish compiles it again.
	policyDirty bool
	// online holds the IDs of connectors with a live control stream.
	// Clients' presence is tracked elsewhere and pushes nothing.
	online map[string]bool

	byID       map[string]int // index into nodes
	byName     map[string]int
	byCred     map[string]int
	byKey      map[wire.Key]int
	tokenByHsh map[string]int // index into tokens
	table      *routes.Table
	// connectors indexes the connectors in nodes, so that a client's
	// netmap costs O(connectors), not O(nodes): every client's netmap is
	// built on every change.
	connectors []int

	changed chan struct{} // closed when this snapshot is superseded
}

// newSnapshot indexes the given state. The slices must be sorted and are
// owned by the snapshot from now on.
func newSnapshot(version uint64, tokens []store.Token, nodes []store.Node, rs []wire.Route, split wire.SplitPolicy, online map[string]bool) (*snapshot, error) {
	s := &snapshot{
		version:    version,
		tokens:     tokens,
		nodes:      nodes,
		routes:     rs,
		split:      split,
		online:     online,
		byID:       make(map[string]int, len(nodes)),
		byName:     make(map[string]int, len(nodes)),
		byCred:     make(map[string]int, len(nodes)),
		byKey:      make(map[wire.Key]int, len(nodes)),
		tokenByHsh: make(map[string]int, len(tokens)),
		changed:    make(chan struct{}),
	}
	for i, n := range nodes {
		s.byID[n.ID] = i
		s.byName[n.Name] = i
		s.byCred[n.CredHash] = i
		s.byKey[n.PublicKey] = i
		if n.Role == wire.RoleConnector {
			s.connectors = append(s.connectors, i)
		}
	}
	for i, t := range tokens {
		s.tokenByHsh[t.Hash] = i
	}
	entries := make([]routes.Entry, len(rs))
	for i, r := range rs {
		entries[i] = routes.Entry{Prefix: r.Prefix, Owner: r.Connector}
	}
	t, err := routes.NewTable(entries)
	if err != nil {
		return nil, err
	}
	s.table = t
	return s, nil
}

// with returns a copy of s with the given fields replaced; nil slices and
// maps keep s's. Hosts, DNS and the access policy are carried over.
func (s *snapshot) with(version uint64, tokens []store.Token, nodes []store.Node, rs []wire.Route, split *wire.SplitPolicy, online map[string]bool) (*snapshot, error) {
	if tokens == nil {
		tokens = s.tokens
	}
	if nodes == nil {
		nodes = s.nodes
	}
	if rs == nil {
		rs = s.routes
	}
	sp := s.split
	if split != nil {
		sp = *split
	}
	if online == nil {
		online = s.online
	}
	next, err := newSnapshot(version, tokens, nodes, rs, sp, online)
	if err != nil {
		return nil, err
	}
	next.hosts = s.hosts
	next.dns = s.dns
	next.users = s.users
	next.sso = s.sso
	next.policy = s.policy
	next.policyDirty = tokens != nil || nodes != nil || rs != nil
	return next, nil
}

// withUsers returns a copy of s at version with nodes (nil: s's) and
// users replaced, the nodes' online marks kept.
func (s *snapshot) withUsers(version uint64, nodes []store.Node, users []store.User) (*snapshot, error) {
	online := s.online
	if nodes != nil {
		online = make(map[string]bool, len(s.online))
		for _, n := range nodes {
			if s.online[n.ID] {
				online[n.ID] = true
			}
		}
	}
	next, err := s.with(version, nil, nodes, nil, nil, online)
	if err != nil {
		return nil, err
	}
	next.users = users
	next.policyDirty = true
	return next, nil
}

// withHosts returns a copy of s at version with hosts replaced.
func (s *snapshot) withHosts(version uint64, hosts []wire.Host) (*snapshot, error) {
	next, err := s.with(version, nil, nil, nil, nil, nil)
	if err != nil {
		return nil, err
	}
	next.hosts = hosts
	next.policyDirty = true
	return next, nil
}

func (s *snapshot) node(id string) (store.Node, bool) {
	i, ok := s.byID[id]
	if !ok {
		return store.Node{}, false
	}
	return s.nodes[i], true
}

func (s *snapshot) nodeByName(name string) (store.Node, bool) {
	i, ok := s.byName[name]
	if !ok {
		return store.Node{}, false
	}
	return s.nodes[i], true
}

// connectorNames lists enrolled connectors' names, sorted.
func (s *snapshot) connectorNames() []string {
	var names []string
	for _, n := range s.nodes {
		if n.Role == wire.RoleConnector {
			names = append(names, n.Name)
		}
	}
	return names
}

// prefixesOf returns the prefixes routed to the named connector, sorted.
func (s *snapshot) prefixesOf(name string) []netip.Prefix {
	var ps []netip.Prefix
	for _, r := range s.routes {
		if r.Connector == name {
			ps = append(ps, r.Prefix)
		}
	}
	return ps
}

// Sorted-slice edits: each returns a new slice and leaves its input alone,
// since older snapshots may still be read.

func insertSorted[T any](xs []T, x T, less func(a, b T) int) []T {
	i, _ := slices.BinarySearchFunc(xs, x, less)
	out := make([]T, 0, len(xs)+1)
	out = append(out, xs[:i]...)
	out = append(out, x)
	return append(out, xs[i:]...)
}

func replaceAt[T any](xs []T, i int, x T) []T {
	out := slices.Clone(xs)
	out[i] = x
	return out
}

func deleteAt[T any](xs []T, i int) []T {
	out := make([]T, 0, len(xs)-1)
	out = append(out, xs[:i]...)
	return append(out, xs[i+1:]...)
}

func compareNodes(a, b store.Node) int { return cmp.Compare(a.Name, b.Name) }

func compareTokens(a, b store.Token) int {
	if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

func compareRoutes(a, b wire.Route) int { return routes.ComparePrefixes(a.Prefix, b.Prefix) }
