package policy

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/routes"
)

// The slow reference: decide one flow straight from the Document's
// strings, sharing nothing with Compile, Decide or the Matcher.

// refTarget is one rule destination, read by refParseTarget.
type refTarget struct {
	prefix netip.Prefix
	lo, hi int
}

// reference is a document with its destinations read once.
type reference struct {
	doc        *Document
	groups     map[string][]string // the provider's
	targets    [][]refTarget       // per rule
	sshTargets [][]refTarget       // per ssh rule
}

func newReference(doc *Document, env Env) *reference {
	ref := &reference{doc: doc, groups: env.Groups}
	for _, r := range doc.Rules {
		var ts []refTarget
		for _, to := range r.To {
			ts = append(ts, refParseTarget(to, env.Hosts))
		}
		ref.targets = append(ref.targets, ts)
	}
	for _, r := range doc.SSH {
		var ts []refTarget
		for _, to := range r.To {
			ts = append(ts, refParseTarget(to, env.Hosts))
		}
		ref.sshTargets = append(ref.sshTargets, ts)
	}
	return ref
}

// principals returns whether user may log in as each of genPrincipals,
// straight from the ssh rules: nobody without a user.
func (ref *reference) principals(user string) []string {
	var out []string
	for _, p := range genPrincipals {
		for _, r := range ref.doc.SSH {
			if user != "" && ref.applies(r.From, user) && slices.Contains(r.As, p) {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// decide returns the 1-based index of the first rule that lets user
// reach dst:port over proto, or 0.
func (ref *reference) decide(user string, dst netip.Addr, port uint16, proto wire.Proto) int {
	for i, r := range ref.doc.Rules {
		if !ref.applies(r.From, user) {
			continue
		}
		rp := r.Proto
		if rp == "" {
			rp = "tcp"
		}
		if rp != "any" && rp != string(proto) {
			continue
		}
		for _, t := range ref.targets[i] {
			if dst.Zone() != "" || !refContains(t.prefix, dst) {
				continue
			}
			if proto == wire.ProtoICMP || t.lo <= int(port) && int(port) <= t.hi {
				return i + 1
			}
		}
	}
	// An ssh rule lets its users reach TCP port 22 of its destinations.
	for i, r := range ref.doc.SSH {
		if proto != wire.ProtoTCP || port != 22 || !ref.applies(r.From, user) {
			continue
		}
		for _, t := range ref.sshTargets[i] {
			if dst.Zone() == "" && refContains(t.prefix, dst) {
				return wire.SSHRuleBase + i + 1
			}
		}
	}
	return 0
}

// applies reports whether a rule's from takes in user: a group's members
// are the document's and the provider's.
func (ref *reference) applies(from []string, user string) bool {
	for _, f := range from {
		name, isGroup := strings.CutPrefix(f, "group:")
		switch {
		case f == "*":
			return true
		case user != "" && f == "user:"+user:
			return true
		case user != "" && isGroup && (slices.Contains(ref.doc.Groups[name], user) || slices.Contains(ref.groups[name], user)):
			return true
		}
	}
	return false
}

// refContains compares dst bit by bit with p's first p.Bits() bits.
func refContains(p netip.Prefix, dst netip.Addr) bool {
	if !dst.IsValid() || p.Addr().Is4() != dst.Is4() {
		return false
	}
	a, b := p.Addr().AsSlice(), dst.AsSlice()
	for i := range p.Bits() {
		if a[i/8]&(0x80>>(i%8)) != b[i/8]&(0x80>>(i%8)) {
			return false
		}
	}
	return true
}

// refParseTarget reads a destination the generator wrote: "HOST:PORTS"
// for a rule, "HOST" (port 22) for an ssh rule.
func refParseTarget(s string, hosts map[string]netip.Addr) refTarget {
	var lo, hi int
	host, ports := s, "22" // an ssh rule's destinations have no port
	switch end := strings.IndexByte(s, ']'); {
	case end >= 0 && end < len(s)-1: // [IPV6]:PORTS
		host, ports = s[1:end], s[end+2:]
	case end >= 0: // [IPV6]
		host = s[1:end]
	case strings.Count(s, ":") == 1: // HOST:PORTS; a bare IPv6 has more
		host, ports, _ = strings.Cut(s, ":")
	}
	switch first, last, isRange := strings.Cut(ports, "-"); {
	case ports == "*":
		lo, hi = 0, 65535
	case isRange:
		lo, _ = strconv.Atoi(first)
		hi, _ = strconv.Atoi(last)
	default:
		lo, _ = strconv.Atoi(ports)
		hi = lo
	}
	if a, ok := hosts[host]; ok {
		a = a.Unmap()
		return refTarget{netip.PrefixFrom(a, a.BitLen()), lo, hi}
	}
	if strings.Contains(host, "/") {
		return refTarget{netip.MustParsePrefix(host), lo, hi}
	}
	a := netip.MustParseAddr(host)
	return refTarget{netip.PrefixFrom(a, a.BitLen()), lo, hi}
}

// The universe: addresses in 10.0.0.0/24 and fd00::/120, and a few
// outside; users, groups and hosts from short lists.

var (
	univ4      = netip.MustParsePrefix("10.0.0.0/24")
	univ6      = netip.MustParsePrefix("fd00::/120")
	genUsers   = []string{"a@x.io", "b@x.io", "c@x.io", "d@x.io"}
	genGroups  = []string{"g1", "g2", "g3"}
	genPorts   = []string{"*", "22", "443", "0", "65535", "20-25", "8000-8999", "22-22", "1-65534"}
	genProtos  = []string{"", "tcp", "udp", "icmp", "any"}
	checkPorts = []uint16{0, 1, 19, 20, 21, 22, 23, 25, 26, 442, 443, 444, 7999, 8000, 8999, 9000, 65534, 65535}
	checkUsers = append([]string{"", "z@x.io", ssoUser}, genUsers...)
	// ssoUser is in no document group and no token: only the provider's
	// groups name it.
	ssoUser       = "e@x.io"
	genSSOGroups  = []string{"g2", "g3", "p1", "p2"}
	genPrincipals = []string{"_svc", "alice", "deploy", "root"} // sorted, as SSHPrincipals answers
	protos        = []wire.Proto{wire.ProtoTCP, wire.ProtoUDP, wire.ProtoICMP}
)

// genAddr draws an address of the universe.
func genAddr(n func(int) int) netip.Addr {
	if n(3) == 0 {
		b := univ6.Addr().As16()
		b[15] = byte(n(256))
		return netip.AddrFrom16(b)
	}
	return netip.AddrFrom4([4]byte{10, 0, 0, byte(n(256))})
}

// genPrefix draws a canonical prefix in (or, now and then, around) the
// universe.
func genPrefix(n func(int) int) netip.Prefix {
	a := genAddr(n)
	base := univ4.Bits()
	if a.Is6() {
		base = univ6.Bits()
	}
	bits := base + n(a.BitLen()-base+1)
	if n(8) == 0 {
		bits = n(base + 1)
	}
	return netip.PrefixFrom(a, bits).Masked()
}

type genCase struct {
	doc    *Document
	env    Env
	served []netip.Prefix
}

func generate(n func(int) int) genCase {
	hosts := map[string]netip.Addr{"h1": genAddr(n), "h2": genAddr(n)}
	if n(2) == 0 {
		hosts["h3"] = netip.AddrFrom16(genAddr(n).As16()) // IPv4-mapped when IPv4
	}
	doc := &Document{Groups: map[string][]string{}}
	for _, g := range genGroups[:n(len(genGroups)+1)] {
		members := []string{}
		for _, u := range genUsers {
			if n(3) == 0 {
				members = append(members, u)
			}
		}
		doc.Groups[g] = members
	}
	// Provider groups, some named like the document's; with single
	// sign-on on, a rule may name a group nobody has yet.
	env := Env{Users: genUsers, Hosts: hosts, SSO: n(2) == 0}
	if n(3) > 0 {
		env.Groups = map[string][]string{}
		for _, g := range genSSOGroups {
			if n(2) == 0 {
				continue
			}
			members := []string{}
			for _, u := range append([]string{ssoUser}, genUsers...) {
				if n(3) == 0 {
					members = append(members, u)
				}
			}
			env.Groups[g] = members
		}
	}
	groupNames := slices.Sorted(maps.Keys(doc.Groups))
	for g := range env.Groups {
		if _, ok := doc.Groups[g]; !ok {
			groupNames = append(groupNames, g)
		}
	}
	slices.Sort(groupNames)
	if env.SSO {
		groupNames = append(groupNames, "p9")
	}
	genFrom := func() []string {
		var from []string
		for range 1 + n(3) {
			switch k := n(5); {
			case k == 0:
				from = append(from, "*")
			case k <= 2 || len(groupNames) == 0:
				from = append(from, "user:"+genUsers[n(len(genUsers))])
			default:
				from = append(from, "group:"+groupNames[n(len(groupNames))])
			}
		}
		return from
	}
	genHost := func() string {
		switch k := n(6); {
		case k == 0:
			return []string{"h1", "h2", "h3"}[n(2+len(hosts)-2)]
		case k == 1:
			return genAddr(n).String()
		default:
			return genPrefix(n).String()
		}
	}
	for range n(7) {
		var r Rule
		r.From = genFrom()
		r.Proto = genProtos[n(len(genProtos))]
		for range 1 + n(3) {
			ports := genPorts[n(len(genPorts))]
			if r.Proto == "icmp" {
				ports = "*"
			}
			host := genHost()
			if strings.Contains(host, ":") {
				host = "[" + host + "]"
			}
			r.To = append(r.To, host+":"+ports)
		}
		doc.Rules = append(doc.Rules, r)
	}
	for range n(4) {
		r := SSHRule{From: genFrom()}
		for range 1 + n(3) {
			host := genHost()
			if strings.Contains(host, ":") && n(2) == 0 {
				host = "[" + host + "]" // IPv6 bare or in brackets
			}
			r.To = append(r.To, host)
		}
		ps := slices.Clone(genPrincipals)
		for i := len(ps) - 1; i > 0; i-- {
			j := n(i + 1)
			ps[i], ps[j] = ps[j], ps[i]
		}
		r.As = ps[:1+n(len(ps))]
		doc.SSH = append(doc.SSH, r)
	}
	var served []netip.Prefix
	for range n(4) {
		served = append(served, genPrefix(n))
	}
	var routes []netip.Prefix
	for range n(3) {
		routes = append(routes, genPrefix(n))
	}
	env.Routes = routes
	return genCase{doc: doc, env: env, served: served}
}

// checkAddrs returns the addresses worth checking: the ends of every
// prefix the case names and their neighbours, and some odd ones.
func checkAddrs(gc genCase) []netip.Addr {
	addrs := []netip.Addr{
		univ4.Addr(), netip.MustParseAddr("10.0.0.255"), netip.MustParseAddr("10.0.1.0"),
		univ6.Addr(), netip.MustParseAddr("fd00::ff"), netip.MustParseAddr("fd00::100"),
		netip.MustParseAddr("192.168.0.1"), netip.MustParseAddr("::ffff:10.0.0.5"),
		netip.MustParseAddr("fd00::1%eth0"), {},
	}
	var ps []netip.Prefix
	ps = append(ps, gc.served...)
	for _, r := range gc.doc.Rules {
		for _, to := range r.To {
			ps = append(ps, refParseTarget(to, gc.env.Hosts).prefix)
		}
	}
	for _, r := range gc.doc.SSH {
		for _, to := range r.To {
			ps = append(ps, refParseTarget(to, gc.env.Hosts).prefix)
		}
	}
	for _, p := range ps {
		first, last := p.Addr(), routes.LastAddr(p)
		addrs = append(addrs, first, last, first.Prev(), last.Next())
	}
	return addrs
}

// checkCase compiles the case (through its text, so the parser takes
// part) and checks Decide, a Matcher over Grants and a Matcher over
// GrantsWithin against the reference for every user and flow.
func checkCase(t *testing.T, gc genCase) {
	t.Helper()
	text, err := json.Marshal(gc.doc)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := Parse(text)
	if err != nil {
		t.Fatalf("Parse of a generated document: %v\n%s", err, text)
	}
	c, _, err := Compile(doc, gc.env, Options{DenyAll: true, Strict: true})
	if err != nil {
		t.Fatalf("Compile of a generated document: %v\n%s", err, text)
	}
	addrs := checkAddrs(gc)
	ref := newReference(gc.doc, gc.env)
	checkPrincipals(t, gc, c, ref, text)
	for _, u := range checkUsers {
		grants := c.Grants(u)
		within := c.GrantsWithin(u, gc.served)
		checkGrants(t, grants)
		checkGrants(t, within)
		all, cut := NewMatcher(grants), NewMatcher(within)
		for _, a := range addrs {
			inServed := false
			for _, s := range gc.served {
				inServed = inServed || refContains(s, a) && a.Zone() == ""
			}
			for _, port := range checkPorts {
				for _, proto := range protos {
					want := ref.decide(u, a, port, proto)
					d := c.Decide(u, a, port, proto)
					if d.Rule != want || d.Allow != (want != 0) {
						t.Fatalf("Decide(%q, %v, %d, %s) = rule %d allow %v, reference rule %d\n%s", u, a, port, proto, d.Rule, d.Allow, want, text)
					}
					if got, ok := all.Allow(a, port, proto); got != want || ok != (want != 0) {
						t.Fatalf("Matcher(Grants(%q)).Allow(%v, %d, %s) = %d, %v, reference rule %d\ngrants %v\n%s", u, a, port, proto, got, ok, want, grants, text)
					}
					if !inServed {
						want = 0
					}
					if got, ok := cut.Allow(a, port, proto); got != want || ok != (want != 0) {
						t.Fatalf("Matcher(GrantsWithin(%q, %v)).Allow(%v, %d, %s) = %d, %v, want rule %d\ngrants %v\n%s", u, gc.served, a, port, proto, got, ok, want, within, text)
					}
				}
			}
		}
	}
}

// checkPrincipals checks SSHPrincipals and Diff's principals against the
// reference for every user, and that the document's ssh_as and
// ssh_deny_as tests pass and fail as the reference says.
func checkPrincipals(t *testing.T, gc genCase, c *Compiled, ref *reference, text []byte) {
	t.Helper()
	changes := map[string]wire.PolicyChange{}
	for _, ch := range Diff(nil, c, checkUsers) {
		changes[ch.User] = ch
	}
	var tests []Test
	for _, u := range checkUsers {
		want := ref.principals(u)
		if got := c.SSHPrincipals(u); !slices.Equal(got, want) {
			t.Fatalf("SSHPrincipals(%q) = %v, reference %v\n%s", u, got, want, text)
		}
		if got := changes[u].SSHGained; !slices.Equal(got, want) {
			t.Fatalf("Diff from allow-all: %q gains principals %v, reference %v\n%s", u, got, want, text)
		}
		if u == "" {
			continue
		}
		tt := Test{User: u, SSHAs: want}
		for _, p := range genPrincipals {
			if !slices.Contains(want, p) {
				tt.SSHDenyAs = append(tt.SSHDenyAs, p)
			}
		}
		if len(tt.SSHAs) > 0 || len(tt.SSHDenyAs) > 0 {
			tests = append(tests, tt)
		}
	}
	// The reference's answers as the document's tests pass; any one of
	// them turned around fails.
	doc := *gc.doc
	doc.Tests = tests
	if _, _, err := Compile(&doc, gc.env, Options{DenyAll: true}); err != nil {
		t.Fatalf("tests the reference passes fail: %v\n%s\ntests %+v", err, text, tests)
	}
	for i, tt := range tests {
		flipped := Test{User: tt.User}
		if len(tt.SSHAs) > 0 {
			flipped.SSHDenyAs = tt.SSHAs[len(tt.SSHAs)-1:]
		} else {
			flipped.SSHAs = tt.SSHDenyAs[:1]
		}
		doc.Tests = []Test{flipped}
		if _, _, err := Compile(&doc, gc.env, Options{DenyAll: true}); err == nil || !strings.Contains(err.Error(), "test failed") {
			t.Fatalf("test %d turned around (%+v) does not fail: %v\n%s", i, flipped, err, text)
		}
	}
}

// checkGrants asserts that grants are canonical, sorted and free of
// duplicates.
func checkGrants(t *testing.T, gs []wire.Grant) {
	t.Helper()
	for i, g := range gs {
		if g.Prefix != g.Prefix.Masked() || !g.Prefix.IsValid() {
			t.Fatalf("grant %v is not canonical", g)
		}
		if i == 0 {
			continue
		}
		prev := gs[i-1]
		if compareGrants(prev, g) >= 0 {
			t.Fatalf("grants out of order: %v before %v", prev, g)
		}
		if prev.Prefix == g.Prefix && prev.Ports == g.Ports && prev.Proto == g.Proto {
			t.Fatalf("duplicate grants %v and %v", prev, g)
		}
	}
}

func TestDecideMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	iters := 100
	if testing.Short() {
		iters = 25
	}
	for i := range iters {
		gc := generate(rng.IntN)
		t.Run(fmt.Sprint(i), func(t *testing.T) { checkCase(t, gc) })
		if t.Failed() {
			return
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
	v := int(s.b[0])
	s.b = s.b[1:]
	if n > 256 && len(s.b) > 0 {
		v = int(binary.BigEndian.Uint16([]byte{byte(v), s.b[0]}))
		s.b = s.b[1:]
	}
	return v % n
}

func FuzzDecide(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 2, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
	f.Add([]byte{3, 1, 1, 1, 1, 0, 6, 2, 4, 1, 3, 2, 2, 5, 0, 24, 1, 1, 7, 3, 2, 1})
	f.Add([]byte("the quick brown fox jumps over the lazy dog, twice over"))
	f.Fuzz(func(t *testing.T, b []byte) {
		src := &byteSource{b: b}
		checkCase(t, generate(src.intN))
	})
}
