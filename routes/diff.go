package routes

import (
	"net/netip"
	"slices"
)

// Diff returns what to add and what to remove to turn the prefix set have
// into the prefix set want: add holds the prefixes of want missing from have,
// remove those of have missing from want. Both are sorted (SortPrefixes) and
// free of duplicates; either is nil when empty. Duplicates in the inputs are
// ignored, the inputs are not modified, and prefixes are compared as given
// (no masking), so callers pass canonical ones.
func Diff(have, want []netip.Prefix) (add, remove []netip.Prefix) {
	h, w := sortedSet(have), sortedSet(want)
	for len(h) > 0 && len(w) > 0 {
		switch c := ComparePrefixes(h[0], w[0]); {
		case c < 0:
			remove = append(remove, h[0])
			h = h[1:]
		case c > 0:
			add = append(add, w[0])
			w = w[1:]
		default:
			h, w = h[1:], w[1:]
		}
	}
	remove = append(remove, h...)
	add = append(add, w...)
	return add, remove
}

// sortedSet returns a sorted copy of ps without duplicates.
func sortedSet(ps []netip.Prefix) []netip.Prefix {
	return SortUnique(slices.Clone(ps))
}
