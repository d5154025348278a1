package wire

import (
	"strings"
	"testing"
)

func TestCanonicalDomain(t *testing.T) {
	long := strings.Repeat("a", 63)
	for _, tt := range []struct{ in, want, err string }{
		{"corp.example", "corp.example", ""},
		{" Corp.EXAMPLE. ", "corp.example", ""},
		{"corp", "corp", ""},
		{"a-1.b2", "a-1.b2", ""},
		{long + ".example", long + ".example", ""},
		{"", "", `"" is not a domain name (for example corp.example)`},
		{".", "", `"." is not a domain name (for example corp.example)`},
		{"corp.example..", "", `domain name "corp.example.." has an empty label`},
		{"a..b", "", `domain name "a..b" has an empty label`},
		{"a" + long, "", `domain name "a` + long + `" has a label longer than 63 characters`},
		{strings.Repeat(long+".", 4) + "x", "", `domain name "` + strings.Repeat(long+".", 4) + `x" is longer than 253 characters`},
		{"a_b.example", "", `domain name "a_b.example" may hold only letters, digits and inner hyphens in each label`},
		{"a-.example", "", `domain name "a-.example" may hold only letters, digits and inner hyphens in each label`},
		{"exämple.com", "", `domain name "exämple.com" may hold only letters, digits and inner hyphens in each label`},
		{"*.example", "", `domain name "*.example" may hold only letters, digits and inner hyphens in each label`},
	} {
		got, err := CanonicalDomain(tt.in)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("CanonicalDomain(%q) = %q, %v; want error %s", tt.in, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("CanonicalDomain(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// FuzzCanonicalDomain: an accepted name is its own canonical form, of
// lowercase ASCII labels, and never longer than MaxDomainLen.
func FuzzCanonicalDomain(f *testing.F) {
	for _, s := range []string{"corp.example", "Corp.Example.", ".", "a..b", "x-y.z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := CanonicalDomain(s)
		if err != nil {
			return
		}
		if len(d) == 0 || len(d) > MaxDomainLen || strings.HasSuffix(d, ".") || d != strings.ToLower(d) {
			t.Fatalf("CanonicalDomain(%q) = %q", s, d)
		}
		if again, err := CanonicalDomain(d); err != nil || again != d {
			t.Fatalf("CanonicalDomain(%q) = %q, %v; not stable", d, again, err)
		}
	})
}
