package split

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/warrennet/warren/routes"
)

// Route is a prefix the coordinator routes to a connector.
type Route struct {
	Prefix    netip.Prefix
	Connector string
}

// String formats r for reasons: "route 192.168.0.0/24 via office".
func (r Route) String() string {
	if r.Connector == "" {
		return fmt.Sprintf("route %v", r.Prefix)
	}
	return fmt.Sprintf("route %v via %s", r.Prefix, r.Connector)
}

// Guard is address space that never enters the tunnel whatever the policy
// says: the coordinator's and the relay's addresses and the client's own
// default gateway, usually as a /32 or /128.
type Guard struct {
	Prefix netip.Prefix
	// Reason names what the guard protects, e.g. "coordinator address".
	Reason string
}

// Decision is one prefix of routed address space and what happens to it.
type Decision struct {
	Prefix netip.Prefix
	// Route is the route this prefix came from. A tunnelled prefix may join
	// the adjacent territory of several routes served by one connector
	// (192.168.0.0/24 and 192.168.1.0/24 both via office tunnel as
	// 192.168.0.0/23); Route is then the zero Prefix and Routes lists them.
	Route netip.Prefix
	// Routes lists, sorted, every route whose longest-prefix-match
	// territory makes up Prefix. It always holds at least one route.
	Routes []netip.Prefix
	// Connector serves Prefix: the connector of its route by longest match.
	Connector string
	// Reason says in one line why Prefix is tunnelled or bypassed.
	Reason string
}

// Result is what Compute returns. Tunnel and Bypass are disjoint, each
// sorted canonically (IPv4 first, then by address, then by length), and
// together cover exactly the routed address space.
type Result struct {
	// Tunnel is the minimal set of prefixes to send into the tunnel: no
	// two overlap, and no two sibling prefixes with the same connector
	// are left unmerged.
	Tunnel []Decision
	// Bypass is the routed space that stays out of the tunnel. Each
	// decision has a single route and a single cause: a guard, an admin's
	// exclude entry, or absence from the include list.
	Bypass []Decision
	// Warnings are one-line messages for the admin: admin excludes that
	// shadow a route, includes with no route behind them.
	Warnings []string
}

// TunnelPrefixes returns the prefixes of r.Tunnel, in order.
func (r Result) TunnelPrefixes() []netip.Prefix {
	ps := make([]netip.Prefix, len(r.Tunnel))
	for i, d := range r.Tunnel {
		ps[i] = d.Prefix
	}
	return ps
}

// ConnectorPrefixes returns the tunnelled prefixes grouped by connector,
// each group in canonical order: the AllowedIPs of each connector peer.
func (r Result) ConnectorPrefixes() map[string][]netip.Prefix {
	m := make(map[string][]netip.Prefix)
	for _, d := range r.Tunnel {
		m[d.Connector] = append(m[d.Connector], d.Prefix)
	}
	return m
}

// Compute decides, for all routed address space, what enters the tunnel.
//
// Each address is served by the route that covers it by longest prefix
// match; address space no route covers is in neither Tunnel nor Bypass. A
// guard always bypasses. In exclude mode (and for any mode other than
// ModeInclude) a routed address is tunnelled unless an admin-written
// exclude covers it; builtin excludes never apply to routed space, because
// routed prefixes are carved out of them. In include mode a routed address
// is tunnelled only when an include covers it. When several entries or
// guards cover an address, the most specific one is named as the cause.
//
// Compute does not validate; run Policy.Validate first. It masks host bits,
// reads IPv4-mapped prefixes as IPv4 and ignores invalid prefixes. When two
// routes, entries or guards have the same prefix, the first one wins. The
// result does not alias the arguments.
func Compute(p Policy, rs []Route, guards []Guard) Result {
	in := prepare(p, rs, guards)
	w := walker{in: in}
	var v4, v6 []item
	add := func(k kind, i int, pfx netip.Prefix) {
		it := item{p: pfx, kind: k, idx: i}
		if pfx.Addr().Is4() {
			v4 = append(v4, it)
		} else {
			v6 = append(v6, it)
		}
	}
	for i, r := range in.routes {
		add(kindRoute, i, r.Prefix)
	}
	for i, g := range in.guards {
		add(kindGuard, i, g.Prefix)
	}
	for i, e := range in.active {
		add(kindEntry, i, e.Prefix)
	}
	none := cover{-1, -1, -1}
	w.walk(netip.PrefixFrom(netip.IPv4Unspecified(), 0), none, v4)
	w.walk(netip.PrefixFrom(netip.IPv6Unspecified(), 0), none, v6)

	var res Result
	shadows := map[[2]int]bool{}
	for _, pc := range w.out {
		d := Decision{Prefix: pc.p, Connector: in.routes[pc.routes[0]].Connector}
		for _, ri := range pc.routes {
			d.Routes = append(d.Routes, in.routes[ri].Prefix)
		}
		d.Routes = routes.SortUnique(d.Routes)
		if len(d.Routes) == 1 {
			d.Route = d.Routes[0]
		}
		if pc.cause == causeNone {
			d.Reason = in.tunnelReason(pc)
			res.Tunnel = append(res.Tunnel, d)
			continue
		}
		d.Reason = in.bypassReason(pc.cause, pc.causeIdx)
		res.Bypass = append(res.Bypass, d)
		if pc.cause == causeExclude {
			shadows[[2]int{pc.causeIdx, pc.routes[0]}] = true
		}
	}
	res.Warnings = in.warnings(shadows)
	return res
}

// inputs are Compute's and Explain's arguments, normalized.
type inputs struct {
	include bool // include mode; otherwise exclude mode
	routes  []Route
	guards  []Guard
	// active are the entries that decide: the include list in include
	// mode, the admin-written excludes in exclude mode.
	active []Entry
	// builtins are the builtin excludes in exclude mode. They decide
	// nothing (routed space is carved out of them) but reasons name them.
	builtins []Entry
}

func prepare(p Policy, rs []Route, guards []Guard) inputs {
	in := inputs{include: p.Mode == ModeInclude}
	for _, r := range rs {
		if pfx, ok := routes.Canonical(r.Prefix); ok {
			r.Prefix = pfx
			in.routes = append(in.routes, r)
		}
	}
	for _, g := range guards {
		if pfx, ok := routes.Canonical(g.Prefix); ok {
			g.Prefix = pfx
			in.guards = append(in.guards, g)
		}
	}
	list := p.Exclude
	if in.include {
		list = p.Include
	}
	for _, e := range list {
		pfx, ok := routes.Canonical(e.Prefix)
		if !ok {
			continue
		}
		e.Prefix = pfx
		if !in.include && e.Builtin {
			in.builtins = append(in.builtins, e)
		} else {
			in.active = append(in.active, e)
		}
	}
	return in
}

type kind int

const (
	kindRoute kind = iota
	kindGuard
	kindEntry // an entry of inputs.active
)

// item is one input prefix in the walk.
type item struct {
	p    netip.Prefix
	kind kind
	idx  int // index into the inputs slice of its kind
}

// cover holds, per kind, the index of the most specific input that covers
// the current prefix, or -1.
type cover [3]int

type cause int

const (
	causeNone        cause = iota // tunnelled
	causeGuard                    // causeIdx indexes inputs.guards
	causeExclude                  // causeIdx indexes inputs.active
	causeNotIncluded              // include mode, no include covers it
)

// piece is a prefix of routed space with a uniform outcome.
type piece struct {
	p     netip.Prefix
	cause cause
	// causeIdx indexes the guard or exclude named by cause, else -1.
	causeIdx int
	// routes index inputs.routes: every route whose territory makes up p
	// when tunnelled, exactly one route when bypassed.
	routes []int
}

// walker splits address space along the input prefixes and labels every
// routed part. out grows in canonical order.
type walker struct {
	in  inputs
	out []piece
}

// walk labels the routed space in p. c covers p; items are the inputs that
// lie inside p (including p itself), in input order.
func (w *walker) walk(p netip.Prefix, c cover, items []item) {
	var inside []item
	routeInside := false
	for _, it := range items {
		if it.p.Bits() > p.Bits() {
			inside = append(inside, it)
			routeInside = routeInside || it.kind == kindRoute
			continue
		}
		// it.p == p. Earlier covers are ancestors, strictly shorter, so
		// the first input with exactly p replaces them and later
		// duplicates do not.
		if cur := c[it.kind]; cur < 0 || w.prefix(it.kind, cur).Bits() < p.Bits() {
			c[it.kind] = it.idx
		}
	}
	if c[kindRoute] < 0 && !routeInside {
		return // nothing in p is routed
	}
	if len(inside) == 0 {
		w.out = append(w.out, w.label(p, c))
		return
	}
	lo, hi := routes.Halves(p)
	var loItems, hiItems []item
	for _, it := range inside {
		if routes.AddrBit(it.p.Addr(), p.Bits()) {
			hiItems = append(hiItems, it)
		} else {
			loItems = append(loItems, it)
		}
	}
	start := len(w.out)
	w.walk(lo, c, loItems)
	w.walk(hi, c, hiItems)
	if len(w.out) != start+2 || w.out[start].p != lo || w.out[start+1].p != hi {
		return
	}
	if m, ok := w.merge(w.out[start], w.out[start+1], p); ok {
		w.out = append(w.out[:start], m)
	}
}

func (w *walker) prefix(k kind, i int) netip.Prefix {
	switch k {
	case kindRoute:
		return w.in.routes[i].Prefix
	case kindGuard:
		return w.in.guards[i].Prefix
	default:
		return w.in.active[i].Prefix
	}
}

// label decides the outcome of p, which c covers uniformly with a route.
func (w *walker) label(p netip.Prefix, c cover) piece {
	pc := piece{p: p, causeIdx: -1, routes: []int{c[kindRoute]}}
	switch {
	case c[kindGuard] >= 0:
		pc.cause, pc.causeIdx = causeGuard, c[kindGuard]
	case w.in.include && c[kindEntry] < 0:
		pc.cause = causeNotIncluded
	case !w.in.include && c[kindEntry] >= 0:
		pc.cause, pc.causeIdx = causeExclude, c[kindEntry]
	}
	return pc
}

// merge joins the sibling pieces a and b into their parent p when nothing
// would be lost: tunnelled pieces of one connector, or bypassed pieces of
// one route with one cause.
func (w *walker) merge(a, b piece, p netip.Prefix) (piece, bool) {
	if a.cause != b.cause {
		return piece{}, false
	}
	if a.cause == causeNone {
		if w.in.routes[a.routes[0]].Connector != w.in.routes[b.routes[0]].Connector {
			return piece{}, false
		}
		rs := slices.Concat(a.routes, b.routes)
		slices.Sort(rs)
		return piece{p: p, causeIdx: -1, routes: slices.Compact(rs)}, true
	}
	if a.causeIdx != b.causeIdx || a.routes[0] != b.routes[0] {
		return piece{}, false
	}
	return piece{p: p, cause: a.cause, causeIdx: a.causeIdx, routes: a.routes}, true
}

// maxNamed bounds how many entries one reason lists.
const maxNamed = 3

// routesPhrase names the routes of a piece and their connector.
func (in inputs) routesPhrase(idx []int) string {
	if len(idx) == 1 {
		return in.routes[idx[0]].String()
	}
	ps := make([]netip.Prefix, len(idx))
	for i, ri := range idx {
		ps[i] = in.routes[ri].Prefix
	}
	s := "routes " + joinPrefixes(routes.SortUnique(ps))
	if c := in.routes[idx[0]].Connector; c != "" {
		s += " via " + c
	}
	return s
}

// tunnelReason explains a tunnelled piece: its routes and, in include mode,
// the includes that admit it, in exclude mode the builtin excludes carved
// out for it.
func (in inputs) tunnelReason(pc piece) string {
	s := in.routesPhrase(pc.routes)
	if in.include {
		return s + "; included by " + namedEntries(in.active, pc.p)
	}
	if b := namedEntries(in.builtins, pc.p); b != "" {
		s += "; carved out of builtin exclude " + b
	}
	return s
}

// bypassReason names the cause of a bypass.
func (in inputs) bypassReason(c cause, idx int) string {
	switch c {
	case causeGuard:
		return guardPhrase(in.guards[idx])
	case causeExclude:
		return "excluded by " + in.active[idx].String()
	default:
		return "not in include list"
	}
}

func guardPhrase(g Guard) string {
	what := g.Reason
	if what == "" {
		what = "guard"
	}
	return fmt.Sprintf("%s %v is never tunnelled", what, g.Prefix)
}

// namedEntries lists the entries that overlap p, at most maxNamed of them,
// or "" when none does.
func namedEntries(entries []Entry, p netip.Prefix) string {
	var names []string
	n := 0
	for _, e := range entries {
		if !e.Prefix.Overlaps(p) {
			continue
		}
		if n++; n <= maxNamed {
			names = append(names, e.String())
		}
	}
	s := strings.Join(names, ", ")
	if n > maxNamed {
		s += fmt.Sprintf(" and %d more", n-maxNamed)
	}
	return s
}

// warnings reports, in include mode, each include that overlaps no route,
// and in exclude mode each (admin exclude, route) pair in shadows.
func (in inputs) warnings(shadows map[[2]int]bool) []string {
	var ws []string
	if in.include {
		for _, e := range in.active {
			if !slices.ContainsFunc(in.routes, func(r Route) bool { return r.Prefix.Overlaps(e.Prefix) }) {
				ws = append(ws, fmt.Sprintf("include %v has no route behind it, so it tunnels nothing", e))
			}
		}
		return ws
	}
	pairs := make([][2]int, 0, len(shadows))
	for k := range shadows {
		pairs = append(pairs, k)
	}
	slices.SortFunc(pairs, func(a, b [2]int) int {
		if c := routes.ComparePrefixes(in.active[a[0]].Prefix, in.active[b[0]].Prefix); c != 0 {
			return c
		}
		return cmp.Or(routes.ComparePrefixes(in.routes[a[1]].Prefix, in.routes[b[1]].Prefix), cmp.Compare(a[0], b[0]))
	})
	for _, pr := range pairs {
		e, r := in.active[pr[0]], in.routes[pr[1]]
		what := "part of "
		if routes.Covers(e.Prefix, r.Prefix) {
			what = ""
		}
		ws = append(ws, fmt.Sprintf("exclude %v shadows %s%v", e, what, r))
	}
	return ws
}

func joinPrefixes(ps []netip.Prefix) string {
	ss := make([]string, len(ps))
	for i, p := range ps {
		ss[i] = p.String()
	}
	return strings.Join(ss, ", ")
}
