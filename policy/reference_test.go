package policy

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
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
	doc     *Document
	targets [][]refTarget // per rule
}

func newReference(doc *Document, hosts map[string]netip.Addr) *reference {
	ref := &reference{doc: doc}
	for _, r := range doc.Rules {
		var ts []refTarget
		for _, to := range r.To {
			ts = append(ts, refParseTarget(to, hosts))
		}
		ref.targets = append(ref.targets, ts)
	}
	return ref
}

// decide returns the 1-based index of the first rule that lets user
// reach dst:port over proto, or 0.
func (ref *reference) decide(user string, dst netip.Addr, port uint16, proto wire.Proto) int {
	for i, r := range ref.doc.Rules {
		if !refApplies(ref.doc, r, user) {
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
	return 0
}

func refApplies(doc *Document, r Rule, user string) bool {
	for _, f := range r.From {
		switch {
		case f == "*":
			return true
		case user != "" && f == "user:"+user:
			return true
		case user != "" && strings.HasPrefix(f, "group:") && slices.Contains(doc.Groups[f[len("group:"):]], user):
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

// refParseTarget reads a destination the generator wrote.
func refParseTarget(s string, hosts map[string]netip.Addr) refTarget {
	var lo, hi int
	i := strings.LastIndexByte(s, ':')
	host, ports := strings.Trim(s[:i], "[]"), s[i+1:]
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
	checkUsers = append([]string{"", "z@x.io"}, genUsers...)
	protos     = []wire.Proto{wire.ProtoTCP, wire.ProtoUDP, wire.ProtoICMP}
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
	for range n(7) {
		var r Rule
		for range 1 + n(3) {
			switch k := n(5); {
			case k == 0:
				r.From = append(r.From, "*")
			case k <= 2 || len(doc.Groups) == 0:
				r.From = append(r.From, "user:"+genUsers[n(len(genUsers))])
			default:
				r.From = append(r.From, "group:"+genGroups[n(len(doc.Groups))])
			}
		}
		r.Proto = genProtos[n(len(genProtos))]
		for range 1 + n(3) {
			ports := genPorts[n(len(genPorts))]
			if r.Proto == "icmp" {
				ports = "*"
			}
			var host string
			switch k := n(6); {
			case k == 0:
				host = []string{"h1", "h2", "h3"}[n(2+len(hosts)-2)]
			case k == 1:
				host = genAddr(n).String()
			default:
				host = genPrefix(n).String()
			}
			if strings.Contains(host, ":") {
				host = "[" + host + "]"
			}
			r.To = append(r.To, host+":"+ports)
		}
		doc.Rules = append(doc.Rules, r)
	}
	var served []netip.Prefix
	for range n(4) {
		served = append(served, genPrefix(n))
	}
	var routes []netip.Prefix
	for range n(3) {
		routes = append(routes, genPrefix(n))
	}
	return genCase{doc: doc, env: Env{Users: genUsers, Hosts: hosts, Routes: routes}, served: served}
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
	ref := newReference(gc.doc, gc.env.Hosts)
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
