package routes

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDiff(t *testing.T) {
	tests := []struct {
		name                string
		have, want          []string
		wantAdd, wantRemove []string
	}{
		{name: "both empty"},
		{name: "from nothing", want: []string{"10.0.0.0/8", "192.168.0.0/24"}, wantAdd: []string{"10.0.0.0/8", "192.168.0.0/24"}},
		{name: "to nothing", have: []string{"2001:db8::/32", "10.0.0.0/8"}, wantRemove: []string{"10.0.0.0/8", "2001:db8::/32"}},
		{name: "same", have: []string{"10.0.0.0/8", "2001:db8::/32"}, want: []string{"2001:db8::/32", "10.0.0.0/8"}},
		{
			name:       "mixed",
			have:       []string{"192.168.0.0/24", "10.0.0.0/8", "2001:db8::/32", "10.0.0.0/8"},
			want:       []string{"fd00::/8", "10.0.0.0/16", "10.0.0.0/8", "172.16.0.0/12", "172.16.0.0/12"},
			wantAdd:    []string{"10.0.0.0/16", "172.16.0.0/12", "fd00::/8"},
			wantRemove: []string{"192.168.0.0/24", "2001:db8::/32"},
		},
		{
			// Same address, different length: distinct prefixes.
			name:       "length matters",
			have:       []string{"10.0.0.0/8"},
			want:       []string{"10.0.0.0/16"},
			wantAdd:    []string{"10.0.0.0/16"},
			wantRemove: []string{"10.0.0.0/8"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			add, remove := Diff(mustPrefixes(t, tt.have...), mustPrefixes(t, tt.want...))
			if diff := cmp.Diff(mustPrefixes(t, tt.wantAdd...), add, cmpOpts, cmpEmpty); diff != "" {
				t.Errorf("add mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(mustPrefixes(t, tt.wantRemove...), remove, cmpOpts, cmpEmpty); diff != "" {
				t.Errorf("remove mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

var cmpEmpty = cmp.FilterValues(func(a, b []netip.Prefix) bool { return len(a) == 0 && len(b) == 0 }, cmp.Ignore())

func TestDiffProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	// A small universe so that have and want share and repeat prefixes.
	bases := append(randBases(r, 1, 4), randBases(r, 1, 16)...)
	var universe []netip.Prefix
	for _, e := range randEntries(r, bases, 40) {
		universe = append(universe, e.Prefix)
	}
	pick := func() []netip.Prefix {
		ps := make([]netip.Prefix, r.IntN(30))
		for i := range ps {
			ps[i] = universe[r.IntN(len(universe))]
		}
		return ps
	}
	for range 1000 {
		have, want := pick(), pick()
		haveCopy, wantCopy := slices.Clone(have), slices.Clone(want)
		add, remove := Diff(have, want)

		if !slices.Equal(have, haveCopy) || !slices.Equal(want, wantCopy) {
			t.Fatalf("Diff modified its inputs")
		}
		for name, ps := range map[string][]netip.Prefix{"add": add, "remove": remove} {
			if !slices.IsSortedFunc(ps, ComparePrefixes) || len(slices.Compact(slices.Clone(ps))) != len(ps) {
				t.Fatalf("Diff(%v, %v): %s = %v is not sorted and unique", have, want, name, ps)
			}
		}
		for _, p := range add {
			if slices.Contains(have, p) || !slices.Contains(want, p) {
				t.Fatalf("Diff(%v, %v): add has %v, which is not new", have, want, p)
			}
		}
		for _, p := range remove {
			if !slices.Contains(have, p) || slices.Contains(want, p) {
				t.Fatalf("Diff(%v, %v): remove has %v, which is not gone", have, want, p)
			}
		}
		// Applying the diff to have gives want, as sets.
		var got []netip.Prefix
		for _, p := range have {
			if !slices.Contains(remove, p) {
				got = append(got, p)
			}
		}
		got = sortedSet(append(got, add...))
		if diff := cmp.Diff(sortedSet(want), got, cmpOpts, cmpEmpty); diff != "" {
			t.Fatalf("Diff(%v, %v) applied to have (-want +got):\n%s", have, want, diff)
		}
		// The diff back undoes it.
		back, forth := Diff(want, have)
		if diff := cmp.Diff([2][]netip.Prefix{remove, add}, [2][]netip.Prefix{back, forth}, cmpOpts, cmpEmpty); diff != "" {
			t.Fatalf("Diff(want, have) is not the reverse (-want +got):\n%s", diff)
		}
	}
}
