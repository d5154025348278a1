package routes

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSortPrefixes(t *testing.T) {
	got := mustPrefixes(t,
		"2001:db8::/32", "10.0.0.0/16", "::/0", "10.0.0.0/8", "9.255.0.0/16",
		"0.0.0.0/0", "2001:db8::/48", "fe80::/10", "192.168.0.0/24")
	got = append(got, netip.Prefix{})
	SortPrefixes(got)
	// Address before length: 9.255.0.0/16 sorts before 10.0.0.0/8, unlike
	// netip.Prefix.Compare.
	want := append([]netip.Prefix{{}}, mustPrefixes(t,
		"0.0.0.0/0", "9.255.0.0/16", "10.0.0.0/8", "10.0.0.0/16", "192.168.0.0/24",
		"::/0", "2001:db8::/32", "2001:db8::/48", "fe80::/10")...)
	if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
		t.Errorf("SortPrefixes mismatch (-want +got):\n%s", diff)
	}
}

func TestSortUnique(t *testing.T) {
	tests := []struct{ in, want []string }{
		{nil, nil},
		{[]string{"10.0.0.0/8"}, []string{"10.0.0.0/8"}},
		{
			[]string{"fd00::/8", "10.0.0.0/16", "10.0.0.0/8", "fd00::/8", "10.0.0.0/8", "10.0.0.0/16"},
			[]string{"10.0.0.0/8", "10.0.0.0/16", "fd00::/8"},
		},
	}
	for _, tt := range tests {
		got := SortUnique(mustPrefixes(t, tt.in...))
		if diff := cmp.Diff(mustPrefixes(t, tt.want...), got, cmpOpts); diff != "" {
			t.Errorf("SortUnique(%q) mismatch (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestCanonical(t *testing.T) {
	tests := []struct {
		in   netip.Prefix
		want string // "" for not ok
	}{
		{netip.MustParsePrefix("192.168.0.0/24"), "192.168.0.0/24"},
		{netip.MustParsePrefix("192.168.0.7/24"), "192.168.0.0/24"},
		{netip.MustParsePrefix("2001:db8::1/32"), "2001:db8::/32"},
		{netip.MustParsePrefix("::ffff:10.1.2.3/120"), "10.1.2.0/24"},
		{netip.MustParsePrefix("::ffff:10.1.2.3/128"), "10.1.2.3/32"},
		{netip.MustParsePrefix("::ffff:0.0.0.0/96"), "0.0.0.0/0"},
		// Shorter than /96 a mapped prefix has no IPv4 form: it stays IPv6.
		{netip.MustParsePrefix("::ffff:10.1.2.3/80"), "::/80"},
		{netip.PrefixFrom(netip.MustParseAddr("fe80::1%eth0"), 64), "fe80::/64"},
		{netip.Prefix{}, ""},
		{netip.PrefixFrom(netip.MustParseAddr("10.0.0.0"), 33), ""},
	}
	for _, tt := range tests {
		got, ok := Canonical(tt.in)
		if tt.want == "" {
			if ok || got != (netip.Prefix{}) {
				t.Errorf("Canonical(%v) = %v, %v; want the zero prefix, false", tt.in, got, ok)
			}
			continue
		}
		if !ok || got != netip.MustParsePrefix(tt.want) {
			t.Errorf("Canonical(%v) = %v, %v; want %s, true", tt.in, got, ok, tt.want)
		}
	}
}

func TestCovers(t *testing.T) {
	tests := []struct {
		outer, inner string
		want         bool
	}{
		{"10.0.0.0/8", "10.0.0.0/8", true},
		{"10.0.0.0/8", "10.1.0.0/16", true},
		{"10.0.0.0/8", "10.255.255.255/32", true},
		{"10.1.0.0/16", "10.0.0.0/8", false},
		{"10.0.0.0/8", "11.0.0.0/16", false},
		{"0.0.0.0/0", "::/0", false},
		{"::/0", "0.0.0.0/0", false},
		{"::/0", "2001:db8::/32", true},
		{"fd00::/8", "fd00::/7", false},
	}
	for _, tt := range tests {
		if got := Covers(netip.MustParsePrefix(tt.outer), netip.MustParsePrefix(tt.inner)); got != tt.want {
			t.Errorf("Covers(%s, %s) = %v, want %v", tt.outer, tt.inner, got, tt.want)
		}
	}
}

func TestAddrBit(t *testing.T) {
	tests := []struct {
		addr string
		set  []int // every bit that is set
	}{
		{"0.0.0.0", nil},
		{"128.0.0.1", []int{0, 31}},
		{"10.1.0.128", []int{4, 6, 15, 24}},
		{"::", nil},
		{"8000::1", []int{0, 127}},
		{"::ffff:0.0.0.0", []int{80, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95}},
	}
	for _, tt := range tests {
		a := netip.MustParseAddr(tt.addr)
		want := map[int]bool{}
		for _, i := range tt.set {
			want[i] = true
		}
		for i := range a.BitLen() {
			if got := AddrBit(a, i); got != want[i] {
				t.Errorf("AddrBit(%s, %d) = %v, want %v", tt.addr, i, got, want[i])
			}
		}
	}
}

func TestHalves(t *testing.T) {
	tests := []struct{ in, lo, hi string }{
		{"0.0.0.0/0", "0.0.0.0/1", "128.0.0.0/1"},
		{"10.1.0.0/24", "10.1.0.0/25", "10.1.0.128/25"},
		{"10.0.0.0/8", "10.0.0.0/9", "10.128.0.0/9"},
		{"192.168.0.0/31", "192.168.0.0/32", "192.168.0.1/32"},
		{"::/0", "::/1", "8000::/1"},
		{"fd00::/8", "fd00::/9", "fd80::/9"},
		{"2001:db8::/127", "2001:db8::/128", "2001:db8::1/128"},
		// Halves stays in its family: the upper half is the IPv4-mapped
		// range as IPv6, which Canonical would turn into 0.0.0.0/0.
		{"::fffe:0:0/95", "::fffe:0:0/96", "::ffff:0.0.0.0/96"},
	}
	for _, tt := range tests {
		lo, hi := Halves(netip.MustParsePrefix(tt.in))
		if lo.String() != tt.lo || hi.String() != tt.hi {
			t.Errorf("Halves(%s) = %v, %v; want %s, %s", tt.in, lo, hi, tt.lo, tt.hi)
		}
	}
}

// FuzzArith checks the prefix arithmetic on any prefix: Canonical gives
// what ParsePrefix accepts and keeps what it accepts, and Halves splits a
// canonical prefix into two disjoint masked halves that AddrBit tells
// apart. (A half may be IPv4-mapped, so not canonical: see TestHalves.)
func FuzzArith(f *testing.F) {
	f.Add([]byte{10, 1, 0, 0}, 24)
	f.Add([]byte{192, 168, 0, 7}, 31)
	f.Add([]byte{0, 0, 0, 0}, 0)
	f.Add(netip.MustParseAddr("::ffff:10.1.2.3").AsSlice(), 120)
	f.Add(netip.MustParseAddr("2001:db8::1").AsSlice(), 64)
	f.Add(netip.MustParseAddr("::fffe:0:0").AsSlice(), 95)
	f.Fuzz(func(t *testing.T, b []byte, bits int) {
		a, ok := netip.AddrFromSlice(b)
		if !ok {
			return
		}
		p := netip.PrefixFrom(a, bits)
		q, ok := Canonical(p)
		if ok != p.IsValid() {
			t.Fatalf("Canonical(%v) ok = %v, want %v", p, ok, p.IsValid())
		}
		if !ok {
			return
		}
		if err := checkCanonical(q); err != nil {
			t.Fatalf("Canonical(%v) = %v, which is not canonical: %v", p, q, err)
		}
		if checkCanonical(p) == nil && q != p {
			t.Fatalf("Canonical(%v) = %v, want the canonical input back", p, q)
		}
		if !Covers(q, q) || !q.Contains(q.Addr()) {
			t.Fatalf("%v does not cover itself", q)
		}
		if q.Bits() == q.Addr().BitLen() {
			return
		}
		lo, hi := Halves(q)
		for _, h := range []netip.Prefix{lo, hi} {
			if h.Bits() != q.Bits()+1 || h != h.Masked() || !Covers(q, h) || Covers(h, q) {
				t.Fatalf("Halves(%v) = %v, %v: %v is not a masked half", q, lo, hi, h)
			}
		}
		if lo.Overlaps(hi) || lo.Addr() != q.Addr() || ComparePrefixes(lo, hi) >= 0 {
			t.Fatalf("Halves(%v) = %v, %v: want disjoint halves, lo first", q, lo, hi)
		}
		if AddrBit(lo.Addr(), q.Bits()) || !AddrBit(hi.Addr(), q.Bits()) {
			t.Fatalf("Halves(%v) = %v, %v: AddrBit at %d does not tell them apart", q, lo, hi, q.Bits())
		}
	})
}
