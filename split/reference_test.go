package split

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/warrennet/warren/routes"
)

// The slow reference: decide one address at a time, straight from the
// rules, sharing nothing with Compute but the reason phrasing.

type refOutcome struct {
	routed, tunnelled bool
	route             Route
	guard             *Guard
	entry             *Entry
	reason            string // the bypass Decision's Reason
}

func refCovers(p netip.Prefix, a netip.Addr) bool {
	if a4 := p.Addr(); a4.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a4.Unmap(), p.Bits()-96)
	}
	return p.IsValid() && p.Masked().Contains(a)
}

func refBits(p netip.Prefix) int {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return p.Bits() - 96
	}
	return p.Bits()
}

// refLongest returns the first of the longest matches, by linear scan.
func refLongest[T any](vs []T, a netip.Addr, pfx func(T) netip.Prefix, keep func(T) bool) *T {
	var best *T
	for i := range vs {
		if !keep(vs[i]) || !refCovers(pfx(vs[i]), a) {
			continue
		}
		if best == nil || refBits(pfx(vs[i])) > refBits(pfx(*best)) {
			v := vs[i]
			best = &v
		}
	}
	return best
}

func always[T any](T) bool { return true }

func reference(p Policy, rs []Route, guards []Guard, a netip.Addr) refOutcome {
	var o refOutcome
	if g := refLongest(guards, a, func(g Guard) netip.Prefix { return g.Prefix }, always[Guard]); g != nil {
		g.Prefix, _ = routes.Canonical(g.Prefix)
		o.guard = g
	}
	r := refLongest(rs, a, func(r Route) netip.Prefix { return r.Prefix }, always[Route])
	if r == nil {
		return o
	}
	o.routed, o.route = true, *r
	o.route.Prefix, _ = routes.Canonical(r.Prefix)
	include := p.Mode == ModeInclude
	var entry *Entry
	if include {
		entry = refLongest(p.Include, a, entryPrefix, always[Entry])
	} else {
		entry = refLongest(p.Exclude, a, entryPrefix, func(e Entry) bool { return !e.Builtin })
	}
	if entry != nil {
		entry.Prefix, _ = routes.Canonical(entry.Prefix)
	}
	switch {
	case o.guard != nil:
		o.reason = guardPhrase(*o.guard)
	case include && entry == nil:
		o.reason = "not in include list"
	case include:
		o.tunnelled, o.entry = true, entry
	case entry != nil:
		o.entry = entry
		o.reason = "excluded by " + entry.String()
	default:
		o.tunnelled = true
		if b := refLongest(p.Exclude, a, entryPrefix, func(e Entry) bool { return e.Builtin }); b != nil {
			b.Prefix, _ = routes.Canonical(b.Prefix)
			o.entry = b
		}
	}
	return o
}

// The universe: addresses restricted to 10.0.0.0/24 and fd00::/120, plus
// the odd broad prefix that contains them.

var (
	univ4 = netip.MustParsePrefix("10.0.0.0/24")
	univ6 = netip.MustParsePrefix("fd00::/120")
)

// genPrefix draws a prefix in the universe: mostly inside it, sometimes
// one that contains it, sometimes with host bits set.
func genPrefix(n func(int) int) netip.Prefix {
	base := univ4
	if n(3) == 0 {
		base = univ6
	}
	bits := base.Bits() + n(base.Addr().BitLen()-base.Bits()+1)
	if n(8) == 0 {
		if base.Addr().Is4() {
			bits = []int{0, 8, 16, 23}[n(4)]
		} else {
			bits = []int{0, 8, 64, 119}[n(4)]
		}
	}
	a := base.Addr()
	b := a.As16()
	b[15] = byte(n(256))
	if a.Is4() {
		a = netip.AddrFrom4([4]byte(b[12:]))
	} else {
		a = netip.AddrFrom16(b)
	}
	p := netip.PrefixFrom(a, bits)
	if n(4) != 0 {
		p = p.Masked()
	}
	return p
}

var comments = []string{"", "lab", "printers"}

func genCase(n func(int) int) (Policy, []Route, []Guard) {
	var p Policy
	switch n(5) {
	case 0:
		p = DefaultPolicy()
	case 1, 2:
		p.Mode = ModeInclude
	case 3:
		p.Mode = ModeExclude
	}
	if n(2) == 0 {
		p.Exclude = append(p.Exclude, DefaultPolicy().Exclude...)
	}
	for range n(5) {
		p.Include = append(p.Include, Entry{Prefix: genPrefix(n), Comment: comments[n(3)]})
	}
	for range n(5) {
		p.Exclude = append(p.Exclude, Entry{Prefix: genPrefix(n), Comment: comments[n(3)], Builtin: n(6) == 0})
	}
	var routes []Route
	for range n(6) {
		routes = append(routes, Route{Prefix: genPrefix(n), Connector: []string{"a", "b", "c"}[n(3)]})
	}
	var guards []Guard
	for range n(4) {
		guards = append(guards, Guard{Prefix: genPrefix(n), Reason: []string{"", "relay address", "default gateway"}[n(3)]})
	}
	return p, routes, guards
}

// checkResult asserts that res is canonical and minimal, never tunnels a
// guard, and agrees with the reference (and Explain with both) on every
// address of the universe and on the ends of every decision.
func checkResult(t *testing.T, p Policy, rs []Route, guards []Guard, res Result) {
	t.Helper()
	checkCanonical(t, res)
	for _, g := range guards {
		gp, ok := routes.Canonical(g.Prefix)
		for _, d := range res.Tunnel {
			if ok && d.Prefix.Overlaps(gp) {
				t.Errorf("tunnel %v overlaps guard %v", d.Prefix, gp)
			}
		}
	}
	var addrs []netip.Addr
	for _, u := range []netip.Prefix{univ4, univ6} {
		for a := u.Addr(); u.Contains(a); a = a.Next() {
			addrs = append(addrs, a)
		}
	}
	for _, d := range append(append([]Decision(nil), res.Tunnel...), res.Bypass...) {
		addrs = append(addrs, d.Prefix.Addr(), routes.LastAddr(d.Prefix))
	}
	for _, a := range addrs {
		checkAddr(t, p, rs, guards, res, a)
	}
}

func find(ds []Decision, a netip.Addr) *Decision {
	for i := range ds {
		if ds[i].Prefix.Contains(a) {
			return &ds[i]
		}
	}
	return nil
}

func checkAddr(t *testing.T, p Policy, routes []Route, guards []Guard, res Result, a netip.Addr) {
	t.Helper()
	want := reference(p, routes, guards, a)
	tun, byp := find(res.Tunnel, a), find(res.Bypass, a)
	switch {
	case !want.routed:
		if tun != nil || byp != nil {
			t.Errorf("%v: unrouted address in tunnel %v / bypass %v", a, tun, byp)
		}
	case want.tunnelled:
		if tun == nil {
			t.Errorf("%v: got not tunnelled (bypass %+v), want tunnelled via %v", a, byp, want.route)
			break
		}
		if tun.Connector != want.route.Connector || !containsPrefix(tun.Routes, want.route.Prefix) {
			t.Errorf("%v: got connector %q routes %v, want %v", a, tun.Connector, tun.Routes, want.route)
		}
	default:
		if byp == nil {
			t.Errorf("%v: got not bypassed (tunnel %+v), want bypassed: %s", a, tun, want.reason)
			break
		}
		if byp.Route != want.route.Prefix || byp.Connector != want.route.Connector || byp.Reason != want.reason {
			t.Errorf("%v: got bypass %v %q %q, want %v %q", a, byp.Route, byp.Connector, byp.Reason, want.route, want.reason)
		}
	}
	ex := Explain(p, routes, guards, a)
	var route *Route
	if want.routed {
		route = &want.route
	}
	if ex.Tunnelled != want.tunnelled || !ptrEqual(ex.Route, route) || !ptrEqual(ex.Guard, want.guard) || !ptrEqual(ex.Entry, want.entry) {
		t.Errorf("Explain(%v) = %+v, want tunnelled %v route %v guard %v entry %v", a, ex, want.tunnelled, route, want.guard, want.entry)
	}
}

func containsPrefix(ps []netip.Prefix, p netip.Prefix) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

func ptrEqual[T comparable](a, b *T) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}

func checkCanonical(t *testing.T, res Result) {
	t.Helper()
	all := make([]Decision, 0, len(res.Tunnel)+len(res.Bypass))
	for _, list := range [][]Decision{res.Tunnel, res.Bypass} {
		for i, d := range list {
			if !d.Prefix.IsValid() || d.Prefix != d.Prefix.Masked() {
				t.Errorf("decision %v is not canonical", d.Prefix)
			}
			if i > 0 && routes.ComparePrefixes(list[i-1].Prefix, d.Prefix) >= 0 {
				t.Errorf("decisions out of order: %v before %v", list[i-1].Prefix, d.Prefix)
			}
			if len(d.Routes) == 0 || (len(d.Routes) == 1) != (d.Route == d.Routes[0]) || (len(d.Routes) > 1) != !d.Route.IsValid() {
				t.Errorf("decision %v: route %v routes %v", d.Prefix, d.Route, d.Routes)
			}
			if d.Reason == "" || strings.ContainsAny(d.Reason, "\r\n") {
				t.Errorf("decision %v: reason %q is not one line", d.Prefix, d.Reason)
			}
		}
		all = append(all, list...)
	}
	sortDecisions(all)
	for i := 1; i < len(all); i++ {
		if all[i-1].Prefix.Overlaps(all[i].Prefix) {
			t.Errorf("decisions overlap: %v and %v", all[i-1].Prefix, all[i].Prefix)
		}
	}
	tunnel := map[netip.Prefix]string{}
	for _, d := range res.Tunnel {
		tunnel[d.Prefix] = d.Connector
	}
	bypass := map[netip.Prefix]Decision{}
	for _, d := range res.Bypass {
		bypass[d.Prefix] = d
	}
	for _, d := range res.Tunnel {
		if s, ok := sibling(d.Prefix); ok {
			if c, ok := tunnel[s]; ok && c == d.Connector {
				t.Errorf("tunnel %v and %v via %q should merge", d.Prefix, s, c)
			}
		}
	}
	for _, d := range res.Bypass {
		if s, ok := sibling(d.Prefix); ok {
			if o, ok := bypass[s]; ok && o.Route == d.Route && o.Reason == d.Reason {
				t.Errorf("bypass %v and %v (%s) should merge", d.Prefix, s, d.Reason)
			}
		}
	}
}

func sortDecisions(ds []Decision) {
	for i := 1; i < len(ds); i++ {
		for j := i; j > 0 && routes.ComparePrefixes(ds[j-1].Prefix, ds[j].Prefix) > 0; j-- {
			ds[j-1], ds[j] = ds[j], ds[j-1]
		}
	}
}

// sibling returns the upper sibling of p when p is a lower half.
func sibling(p netip.Prefix) (netip.Prefix, bool) {
	if p.Bits() == 0 {
		return netip.Prefix{}, false
	}
	lo, hi := routes.Halves(netip.PrefixFrom(p.Addr(), p.Bits()-1).Masked())
	return hi, lo == p
}

func TestComputeMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	iters := 1500
	if testing.Short() {
		iters = 300
	}
	for i := range iters {
		p, routes, guards := genCase(rng.IntN)
		res := Compute(p, routes, guards)
		checkResult(t, p, routes, guards, res)
		if t.Failed() {
			t.Fatalf("case %d: policy %+v routes %v guards %v\nresult %+v", i, p, routes, guards, res)
		}
	}
}

// byteSource turns fuzz bytes into bounded choices; it yields zeros once
// the bytes run out.
type byteSource struct{ b []byte }

func (s *byteSource) intN(n int) int {
	if len(s.b) == 0 || n <= 1 {
		return 0
	}
	var v int
	if n > 256 && len(s.b) >= 2 {
		v = int(binary.BigEndian.Uint16(s.b))
		s.b = s.b[2:]
	} else {
		v = int(s.b[0])
		s.b = s.b[1:]
	}
	return v % n
}

func FuzzCompute(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 0, 1, 3, 0, 7, 1, 0, 2, 0, 200, 2, 1, 0, 24})
	f.Add([]byte{1, 1, 2, 0, 25, 0, 0, 2, 1, 1, 0, 3, 4, 9, 0, 1, 2, 30, 4})
	f.Add([]byte("the quick brown fox jumps over the lazy dog, twice over"))
	f.Fuzz(func(t *testing.T, b []byte) {
		src := &byteSource{b: b}
		p, routes, guards := genCase(src.intN)
		res := Compute(p, routes, guards)
		checkResult(t, p, routes, guards, res)
	})
}

// kernelTunnels tells whether a kernel holding install as routes into the
// tunnel and lans as connected routes sends a into the tunnel, by longest
// prefix match. ok is false on a tie, which the kernel settles by metric.
func kernelTunnels(install, lans []netip.Prefix, a netip.Addr) (tunnel, ok bool) {
	longest := func(ps []netip.Prefix) int {
		best := -1
		for _, p := range ps {
			if refCovers(p, a) && refBits(p) > best {
				best = refBits(p)
			}
		}
		return best
	}
	t, l := longest(install), longest(lans)
	return t > l, t != l || t < 0
}

// checkLocal asserts that loc is Compute's result with the right guards,
// that Install is canonical, and that a kernel with Install and the LANs
// as routes tunnels exactly what the reference tunnels (bar a LAN of one
// address, which cannot be split and so keeps its address when the tunnel
// wins); and that there are warnings, none twice, exactly when a LAN
// overlaps the side that loses.
func checkLocal(t *testing.T, p Policy, rs []Route, guards []Guard, lans []netip.Prefix, lanWins bool, loc Local) {
	t.Helper()
	wantGuards := slices.Clone(guards)
	var ls []netip.Prefix
	for _, l := range lans {
		if c, ok := routes.Canonical(l); ok {
			ls = append(ls, c)
			if lanWins {
				wantGuards = append(wantGuards, Guard{Prefix: c, Reason: lanGuardReason})
			}
		}
	}
	if diff := cmp.Diff(wantGuards, loc.Guards, cmpOpts, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Guards (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(Compute(p, rs, wantGuards), loc.Result, cmpOpts, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Result differs from Compute's (-want +got):\n%s", diff)
	}
	checkResult(t, p, rs, wantGuards, loc.Result)
	for i, q := range loc.Install {
		if c, ok := routes.Canonical(q); !ok || c != q {
			t.Errorf("install %v is not canonical", q)
		}
		if i > 0 && routes.ComparePrefixes(loc.Install[i-1], q) >= 0 {
			t.Errorf("install out of order or repeated: %v before %v", loc.Install[i-1], q)
		}
	}
	var addrs []netip.Addr
	for _, u := range []netip.Prefix{univ4, univ6} {
		for a := u.Addr(); u.Contains(a); a = a.Next() {
			addrs = append(addrs, a)
		}
	}
	for _, q := range slices.Concat(loc.Install, ls) {
		addrs = append(addrs, q.Addr(), routes.LastAddr(q))
	}
	for _, a := range addrs {
		want := reference(p, rs, wantGuards, a).tunnelled
		if slices.ContainsFunc(loc.Install, func(q netip.Prefix) bool { return q.Contains(a) }) && !want {
			t.Errorf("%v: installed into the tunnel, but the reference bypasses it", a)
		}
		if !lanWins && slices.Contains(ls, netip.PrefixFrom(a, a.BitLen())) {
			continue
		}
		got, ok := kernelTunnels(loc.Install, ls, a)
		if !ok {
			t.Errorf("%v: an installed route ties with a LAN", a)
		} else if got != want {
			t.Errorf("%v: the kernel would tunnel it: %v, want %v (install %v, LANs %v)", a, got, want, loc.Install, ls)
		}
	}
	losing := loc.Result.Tunnel
	if lanWins {
		losing = loc.Result.Bypass
	}
	overlap := slices.ContainsFunc(losing, func(d Decision) bool {
		return slices.ContainsFunc(ls, d.Prefix.Overlaps)
	})
	if overlap != (len(loc.Warnings) > 0) {
		t.Errorf("warnings %q, want some: %v", loc.Warnings, overlap)
	}
	seen := map[string]bool{}
	for _, w := range loc.Warnings {
		if w == "" || strings.ContainsAny(w, "\r\n") {
			t.Errorf("warning %q is not one line", w)
		}
		if seen[w] {
			t.Errorf("warning %q repeats", w)
		}
		seen[w] = true
	}
}

// genLANs draws a machine's LANs in the universe and which side wins.
func genLANs(n func(int) int) ([]netip.Prefix, bool) {
	var lans []netip.Prefix
	for range n(4) {
		lans = append(lans, genPrefix(n))
	}
	return lans, n(2) == 0
}

func TestComputeLocalMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	iters := 500
	if testing.Short() {
		iters = 100
	}
	for i := range iters {
		p, rs, guards := genCase(rng.IntN)
		lans, lanWins := genLANs(rng.IntN)
		loc := ComputeLocal(p, rs, guards, lans, lanWins)
		checkLocal(t, p, rs, guards, lans, lanWins, loc)
		if t.Failed() {
			t.Fatalf("case %d: policy %+v routes %v guards %v LANs %v lan wins %v\nlocal %+v", i, p, rs, guards, lans, lanWins, loc)
		}
	}
}

func FuzzComputeLocal(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{3, 1, 0, 1, 0, 0, 24, 0, 0, 0, 0, 0, 2, 0, 0, 0, 3, 0, 1})
	f.Add([]byte("a café LAN must not capture an office route, twice over"))
	f.Fuzz(func(t *testing.T, b []byte) {
		src := &byteSource{b: b}
		p, rs, guards := genCase(src.intN)
		lans, lanWins := genLANs(src.intN)
		loc := ComputeLocal(p, rs, guards, lans, lanWins)
		checkLocal(t, p, rs, guards, lans, lanWins, loc)
	})
}
