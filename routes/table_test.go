package routes

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var owners = []string{"office", "lab", "dc1", "dc2"}

// lookupSlow is the reference for Table.Lookup: a linear scan for the
// longest prefix that contains ip, ignoring any zone.
func lookupSlow(es []Entry, ip netip.Addr) (Entry, bool) {
	ip = ip.WithZone("")
	var best Entry
	found := false
	for _, e := range es {
		if e.Prefix.Contains(ip) && (!found || e.Prefix.Bits() > best.Prefix.Bits()) {
			best, found = e, true
		}
	}
	return best, found
}

// probesAround returns, for each entry, its first and last address and the
// addresses just outside it.
func probesAround(es []Entry) []netip.Addr {
	var as []netip.Addr
	for _, e := range es {
		first, last := e.Prefix.Addr(), LastAddr(e.Prefix)
		as = append(as, first, last, first.Prev(), last.Next())
	}
	return as
}

// checkTable fails t unless tbl holds exactly es and agrees with lookupSlow
// on every address in probes.
func checkTable(t *testing.T, tbl *Table, es []Entry, probes []netip.Addr) {
	t.Helper()
	want := slices.Clone(es)
	slices.SortFunc(want, func(a, b Entry) int { return ComparePrefixes(a.Prefix, b.Prefix) })
	if diff := cmp.Diff(want, tbl.Entries(), cmpOpts); diff != "" {
		t.Fatalf("Entries mismatch (-want +got):\n%s", diff)
	}
	if got := tbl.Len(); got != len(es) {
		t.Errorf("Len() = %d, want %d", got, len(es))
	}
	for _, e := range es {
		if got, ok := tbl.Get(e.Prefix); !ok || got != e {
			t.Errorf("Get(%v) = %v, %v; want %v, true", e.Prefix, got, ok, e)
		}
	}
	for _, ip := range probes {
		got, gotOK := tbl.Lookup(ip)
		want, wantOK := lookupSlow(es, ip)
		if got != want || gotOK != wantOK {
			t.Errorf("Lookup(%v) = %v, %v; want %v, %v", ip, got, gotOK, want, wantOK)
		}
	}
	// TakesFrom, for the entries themselves, their halves and the probes'
	// host prefixes.
	var cands []netip.Prefix
	for _, e := range es {
		cands = append(cands, e.Prefix)
		if e.Prefix.Bits() < e.Prefix.Addr().BitLen() {
			lo, hi := Halves(e.Prefix)
			cands = append(cands, lo, hi)
		}
	}
	for _, ip := range probes {
		if ip.IsValid() && ip.Zone() == "" {
			cands = append(cands, netip.PrefixFrom(ip, ip.BitLen()))
		}
	}
	for _, p := range cands {
		if checkCanonical(p) != nil {
			continue
		}
		for _, owner := range owners {
			got, gotOK := tbl.TakesFrom(p, owner)
			want, wantOK := takesFromSlow(es, p, owner)
			if got != want || gotOK != wantOK {
				t.Errorf("TakesFrom(%v, %s) = %v, %v; want %v, %v", p, owner, got, gotOK, want, wantOK)
			}
		}
	}
}

// takesFromSlow is TakesFrom by a linear scan: nothing if p is an entry,
// else the longest entry strictly covering p, if another owner has it.
func takesFromSlow(es []Entry, p netip.Prefix, owner string) (Entry, bool) {
	var best Entry
	found := false
	for _, e := range es {
		if e.Prefix == p {
			return Entry{}, false
		}
		if Covers(e.Prefix, p) && (!found || e.Prefix.Bits() > best.Prefix.Bits()) {
			best, found = e, true
		}
	}
	if !found || best.Owner == owner {
		return Entry{}, false
	}
	return best, true
}

func TestTakesFrom(t *testing.T) {
	tbl := mustTable(t, "192.168.0.0/16", "office", "192.168.0.0/24", "lab", "192.168.0.192/26", "office", "10.0.0.0/8", "dc1", "2001:db8::/32", "dc2")
	for _, tt := range []struct {
		prefix, owner string
		want          string // the entry's prefix; "" for none
	}{
		{"192.168.0.128/25", "dc1", "192.168.0.0/24"},   // the longest covering one
		{"192.168.0.128/25", "lab", ""},                 // lab's own
		{"192.168.0.224/27", "lab", "192.168.0.192/26"}, // back from office
		{"192.168.1.0/24", "lab", "192.168.0.0/16"},
		{"192.168.0.0/24", "dc1", ""}, // exactly an entry: CheckAdd's to refuse
		{"192.168.0.0/15", "dc1", ""}, // covers, takes nothing
		{"172.16.0.0/12", "dc1", ""},  // nothing covers it
		{"10.1.2.3/32", "office", "10.0.0.0/8"},
		{"2001:db8:1::/48", "office", "2001:db8::/32"},
		{"2001:db8:1::/48", "dc2", ""},
		{"0.0.0.0/0", "dc1", ""},
	} {
		got, ok := tbl.TakesFrom(netip.MustParsePrefix(tt.prefix), tt.owner)
		if ok != (tt.want != "") || (ok && got.Prefix.String() != tt.want) {
			t.Errorf("TakesFrom(%s, %s) = %v, %v; want %q", tt.prefix, tt.owner, got, ok, tt.want)
		}
	}
	var nilTable *Table
	if _, ok := nilTable.TakesFrom(netip.MustParsePrefix("10.0.0.0/8"), "x"); ok {
		t.Error("a nil table takes from someone")
	}
}

// randAddr returns an address that shares a prefix of random length with
// one of bases and is random after it, so prefixes built from such addresses
// nest often.
func randAddr(r *rand.Rand, bases []netip.Addr) netip.Addr {
	b := bases[r.IntN(len(bases))].AsSlice()
	for i := r.IntN(len(b)*8 + 1); i < len(b)*8; i++ {
		if r.IntN(2) == 0 {
			b[i/8] ^= 0x80 >> (i % 8)
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func randBases(r *rand.Rand, n, size int) []netip.Addr {
	bases := make([]netip.Addr, n)
	for i := range bases {
		b := make([]byte, size)
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		bases[i], _ = netip.AddrFromSlice(b)
	}
	return bases
}

// randEntries returns up to n entries with distinct canonical prefixes.
func randEntries(r *rand.Rand, bases []netip.Addr, n int) []Entry {
	var es []Entry
	seen := make(map[netip.Prefix]bool)
	for range n {
		a := randAddr(r, bases)
		p := netip.PrefixFrom(a, r.IntN(a.BitLen()+1)).Masked()
		if p.Addr().Is4In6() || seen[p] {
			continue
		}
		seen[p] = true
		es = append(es, Entry{Prefix: p, Owner: owners[r.IntN(len(owners))]})
	}
	return es
}

func TestLookupMatchesReference(t *testing.T) {
	families := []struct {
		name  string
		bases func(*rand.Rand) []netip.Addr
	}{
		{"ipv4", func(r *rand.Rand) []netip.Addr { return randBases(r, 3, 4) }},
		{"ipv6", func(r *rand.Rand) []netip.Addr { return randBases(r, 3, 16) }},
		{"mixed", func(r *rand.Rand) []netip.Addr { return append(randBases(r, 2, 4), randBases(r, 2, 16)...) }},
	}
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			for range 200 {
				bases := fam.bases(r)
				es := randEntries(r, bases, r.IntN(150))
				tbl, err := NewTable(es)
				if err != nil {
					t.Fatalf("NewTable: %v", err)
				}
				probes := probesAround(es)
				for range 200 {
					probes = append(probes, randAddr(r, bases))
				}
				checkTable(t, tbl, es, probes)
				if t.Failed() {
					return
				}
			}
		})
	}
}

func TestTableLookup(t *testing.T) {
	tbl := mustTable(t,
		"10.0.0.0/8", "a",
		"10.1.0.0/16", "b",
		"10.1.2.0/24", "c",
		"10.1.2.3/32", "d",
		"192.168.0.0/24", "office",
		"2001:db8::/32", "v6a",
		"2001:db8:1::/48", "v6b",
	)
	tests := []struct {
		ip         netip.Addr
		wantPrefix string // "" for no match
		wantOwner  string
	}{
		{netip.MustParseAddr("10.9.9.9"), "10.0.0.0/8", "a"},
		{netip.MustParseAddr("10.1.9.9"), "10.1.0.0/16", "b"},
		{netip.MustParseAddr("10.1.2.4"), "10.1.2.0/24", "c"},
		{netip.MustParseAddr("10.1.2.3"), "10.1.2.3/32", "d"},
		{netip.MustParseAddr("192.168.0.10"), "192.168.0.0/24", "office"},
		{netip.MustParseAddr("192.168.1.10"), "", ""},
		{netip.MustParseAddr("11.0.0.0"), "", ""},
		{netip.MustParseAddr("2001:db8::1"), "2001:db8::/32", "v6a"},
		{netip.MustParseAddr("2001:db8:1::1"), "2001:db8:1::/48", "v6b"},
		{netip.MustParseAddr("2001:db8:1::1%eth0"), "2001:db8:1::/48", "v6b"}, // zone ignored
		{netip.MustParseAddr("2001:db9::1"), "", ""},
		{netip.MustParseAddr("::ffff:10.1.2.3"), "", ""}, // mapped is IPv6
		{netip.Addr{}, "", ""},
	}
	for _, tt := range tests {
		got, ok := tbl.Lookup(tt.ip)
		var want Entry
		if tt.wantPrefix != "" {
			want = Entry{Prefix: netip.MustParsePrefix(tt.wantPrefix), Owner: tt.wantOwner}
		}
		if got != want || ok != (tt.wantPrefix != "") {
			t.Errorf("Lookup(%v) = %v, %v; want %v, %v", tt.ip, got, ok, want, tt.wantPrefix != "")
		}
	}
}

func TestTableGet(t *testing.T) {
	tbl := mustTable(t, "10.0.0.0/8", "a", "10.1.0.0/16", "b", "2001:db8::/32", "c")
	tests := []struct {
		p         netip.Prefix
		wantOwner string // "" for not found
	}{
		{netip.MustParsePrefix("10.0.0.0/8"), "a"},
		{netip.MustParsePrefix("10.1.0.0/16"), "b"},
		{netip.MustParsePrefix("2001:db8::/32"), "c"},
		{netip.MustParsePrefix("10.1.0.0/24"), ""}, // inside, not exact
		{netip.MustParsePrefix("10.0.0.0/7"), ""},
		{netip.MustParsePrefix("10.1.0.1/16"), ""}, // not canonical
		{netip.Prefix{}, ""},
	}
	for _, tt := range tests {
		got, ok := tbl.Get(tt.p)
		var want Entry
		if tt.wantOwner != "" {
			want = Entry{Prefix: tt.p, Owner: tt.wantOwner}
		}
		if got != want || ok != (tt.wantOwner != "") {
			t.Errorf("Get(%v) = %v, %v; want %v, %v", tt.p, got, ok, want, tt.wantOwner != "")
		}
	}
}

func TestTableIsImmutable(t *testing.T) {
	in := []Entry{
		{netip.MustParsePrefix("192.168.0.0/24"), "office"},
		{netip.MustParsePrefix("10.0.0.0/8"), "lab"},
	}
	tbl, err := NewTable(in)
	if err != nil {
		t.Fatal(err)
	}
	in[0].Owner = "changed"
	got := tbl.Entries()
	got[0].Owner = "changed"
	want := []Entry{
		{netip.MustParsePrefix("10.0.0.0/8"), "lab"},
		{netip.MustParsePrefix("192.168.0.0/24"), "office"},
	}
	if diff := cmp.Diff(want, tbl.Entries(), cmpOpts); diff != "" {
		t.Errorf("Entries after mutating input and output (-want +got):\n%s", diff)
	}
}

func TestNewTableErrors(t *testing.T) {
	p := netip.MustParsePrefix
	tests := []struct {
		name    string
		entries []Entry
		wantErr string
		kinds   []error
	}{
		{"duplicate", []Entry{{p("10.0.0.0/8"), "lab"}, {p("192.168.0.0/24"), "office"}, {p("10.0.0.0/8"), "dc1"}},
			`route 10.0.0.0/8 is listed twice (connectors "lab" and "dc1")`, nil},
		{"duplicate same owner", []Entry{{p("2001:db8::/32"), "lab"}, {p("2001:db8::/32"), "lab"}},
			`route 2001:db8::/32 is listed twice (connectors "lab" and "lab")`, nil},
		{"host bits", []Entry{{p("192.168.0.1/24"), "office"}},
			`connector "office": 192.168.0.1/24 has host bits set; did you mean 192.168.0.0/24?`, []error{ErrHostBits, ErrInvalidPrefix}},
		{"mapped", []Entry{{p("::ffff:10.0.0.0/104"), "office"}},
			`connector "office": ::ffff:10.0.0.0/104 is an IPv4-mapped IPv6 prefix; did you mean 10.0.0.0/8?`, []error{ErrInvalidPrefix}},
		{"zero prefix", []Entry{{netip.Prefix{}, "office"}},
			`connector "office": invalid prefix`, []error{ErrInvalidPrefix}},
		{"no owner", []Entry{{p("10.0.0.0/8"), ""}},
			`route 10.0.0.0/8 has no connector`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl, err := NewTable(tt.entries)
			if tbl != nil {
				t.Errorf("NewTable returned a table with an error")
			}
			checkErr(t, err, tt.wantErr, tt.kinds...)
		})
	}
}

func TestNilAndEmptyTable(t *testing.T) {
	empty, err := NewTable(nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, tbl := range map[string]*Table{"nil": nil, "empty": empty} {
		t.Run(name, func(t *testing.T) {
			if e, ok := tbl.Lookup(netip.MustParseAddr("10.0.0.1")); ok {
				t.Errorf("Lookup = %v, true; want no match", e)
			}
			if e, ok := tbl.Get(netip.MustParsePrefix("10.0.0.0/8")); ok {
				t.Errorf("Get = %v, true; want no match", e)
			}
			if got := tbl.Entries(); len(got) != 0 {
				t.Errorf("Entries() = %v, want none", got)
			}
			if got := tbl.Len(); got != 0 {
				t.Errorf("Len() = %d, want 0", got)
			}
			if err := tbl.CheckAdd(netip.MustParsePrefix("10.0.0.0/8"), "lab"); err != nil {
				t.Errorf("CheckAdd: got %v, want nil", err)
			}
		})
	}
}

func TestCheckAdd(t *testing.T) {
	tbl := mustTable(t, "192.168.0.0/24", "office", "10.0.0.0/8", "lab", "2001:db8::/32", "lab")
	tests := []struct {
		prefix  netip.Prefix
		owner   string
		wantErr string // "" for nil
		kinds   []error
	}{
		{netip.MustParsePrefix("192.168.0.0/24"), "office", "", nil}, // idempotent
		{netip.MustParsePrefix("192.168.0.0/24"), "lab", `192.168.0.0/24 is already served by connector "office"`, []error{ErrServedByOther}},
		{netip.MustParsePrefix("2001:db8::/32"), "office", `2001:db8::/32 is already served by connector "lab"`, []error{ErrServedByOther}},
		{netip.MustParsePrefix("192.168.0.128/25"), "lab", "", nil},   // more specific wins
		{netip.MustParsePrefix("10.1.2.3/32"), "office", "", nil},     // more specific wins
		{netip.MustParsePrefix("192.168.0.0/16"), "lab", "", nil},     // covering is fine
		{netip.MustParsePrefix("2001:db8:1::/48"), "office", "", nil}, // more specific wins
		{netip.MustParsePrefix("172.16.0.0/12"), "dc1", "", nil},
		{netip.MustParsePrefix("192.168.0.1/24"), "office", "192.168.0.1/24 has host bits set; did you mean 192.168.0.0/24?", []error{ErrHostBits, ErrInvalidPrefix}},
		{netip.Prefix{}, "office", "invalid prefix", []error{ErrInvalidPrefix}},
		{netip.MustParsePrefix("172.16.0.0/12"), "", "route 172.16.0.0/12 has no connector", nil},
	}
	for _, tt := range tests {
		err := tbl.CheckAdd(tt.prefix, tt.owner)
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("CheckAdd(%v, %q): got %q, want nil", tt.prefix, tt.owner, err)
			}
			continue
		}
		checkErr(t, err, tt.wantErr, tt.kinds...)
	}
}

func TestTableConcurrentReaders(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	bases := append(randBases(r, 2, 4), randBases(r, 2, 16)...)
	es := randEntries(r, bases, 500)
	tbl, err := NewTable(es)
	if err != nil {
		t.Fatal(err)
	}
	probes := probesAround(es)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for _, ip := range probes {
				got, gotOK := tbl.Lookup(ip)
				want, wantOK := lookupSlow(es, ip)
				if got != want || gotOK != wantOK {
					t.Errorf("Lookup(%v) = %v, %v; want %v, %v", ip, got, gotOK, want, wantOK)
					return
				}
			}
		})
	}
	wg.Wait()
}

// mustTable builds a table from prefix, owner pairs.
func mustTable(t *testing.T, pairs ...string) *Table {
	t.Helper()
	var es []Entry
	for i := 0; i < len(pairs); i += 2 {
		es = append(es, Entry{Prefix: netip.MustParsePrefix(pairs[i]), Owner: pairs[i+1]})
	}
	tbl, err := NewTable(es)
	if err != nil {
		t.Fatalf("NewTable: %v", err)
	}
	return tbl
}
