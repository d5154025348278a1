package split

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/routes"
)

var cmpOpts = cmp.Options{
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func TestDefaultPolicy(t *testing.T) {
	p := DefaultPolicy()
	if err := p.Validate(); err != nil {
		t.Fatalf("DefaultPolicy().Validate() = %v, want nil", err)
	}
	if p.Mode != ModeExclude || len(p.Include) != 0 {
		t.Errorf("got mode %q include %v, want exclude mode and no includes", p.Mode, p.Include)
	}
	var got []netip.Prefix
	for i, e := range p.Exclude {
		got = append(got, e.Prefix)
		if !e.Builtin || e.Comment == "" {
			t.Errorf("exclude %v: got builtin %v comment %q, want builtin with a comment", e.Prefix, e.Builtin, e.Comment)
		}
		if i > 0 && routes.ComparePrefixes(p.Exclude[i-1].Prefix, e.Prefix) >= 0 {
			t.Errorf("exclude %v is out of canonical order", e.Prefix)
		}
	}
	var want []netip.Prefix
	for _, s := range []string{
		"10.0.0.0/8", "100.64.0.0/10", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24",
		"192.168.0.0/16", "224.0.0.0/24", "240.0.0.0/4", "255.255.255.255/32", "fd00::/8",
		"fe80::/10", "ff01::/16", "ff02::/16", "ff03::/16", "ff04::/16", "ff05::/16",
	} {
		want = append(want, pfx(s))
	}
	if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
		t.Errorf("default excludes (-want +got):\n%s", diff)
	}
	p.Exclude[0].Comment = "changed"
	if got := DefaultPolicy().Exclude[0].Comment; got == "changed" {
		t.Errorf("DefaultPolicy shares its slices between calls")
	}
}

func TestValidate(t *testing.T) {
	ex := func(s, c string) Entry { return Entry{Prefix: pfx(s), Comment: c} }
	tests := []struct {
		name string
		p    Policy
		want string
	}{
		{"default", DefaultPolicy(), ""},
		{"include mode", Policy{Mode: ModeInclude, Include: []Entry{ex("192.168.1.0/24", "office")}}, ""},
		{"empty mode", Policy{}, `unknown split mode ""; want "include" or "exclude"`},
		{"unknown mode", Policy{Mode: "both"}, `unknown split mode "both"; want "include" or "exclude"`},
		{"invalid prefix", Policy{Mode: ModeExclude, Exclude: []Entry{ex("10.0.0.0/8", ""), {}}}, "exclude entry 2 has no valid prefix"},
		{"host bits", Policy{Mode: ModeInclude, Include: []Entry{{Prefix: netip.PrefixFrom(netip.MustParseAddr("192.168.1.7"), 24)}}},
			"include 192.168.1.7/24 has host bits set; did you mean 192.168.1.0/24?"},
		{"mapped", Policy{Mode: ModeExclude, Exclude: []Entry{ex("::ffff:10.0.0.0/104", "")}},
			"exclude ::ffff:10.0.0.0/104 is an IPv4-mapped IPv6 prefix; did you mean 10.0.0.0/8?"},
		{"multiline comment", Policy{Mode: ModeExclude, Exclude: []Entry{ex("10.9.0.0/16", "a\nb")}},
			"exclude 10.9.0.0/16 has a comment that is not one printable line"},
		{"builtin include", Policy{Mode: ModeInclude, Include: []Entry{{Prefix: pfx("10.0.0.0/8"), Builtin: true}}},
			"include 10.0.0.0/8 is marked builtin; only exclude entries can be builtin"},
		{"duplicate include", Policy{Mode: ModeInclude, Include: []Entry{ex("10.1.0.0/16", "a"), ex("10.2.0.0/16", ""), ex("10.1.0.0/16", "b")}},
			"include 10.1.0.0/16 is listed twice"},
		{"duplicate exclude", Policy{Mode: ModeExclude, Exclude: append(DefaultPolicy().Exclude, ex("fd00::/8", "mine"))},
			"exclude fd00::/8 is listed twice"},
		{"in both lists", Policy{Mode: ModeExclude, Include: []Entry{ex("10.1.0.0/16", "")}, Exclude: []Entry{ex("10.1.0.0/16", "")}},
			"10.1.0.0/16 is in both the include and the exclude list"},
		{"include shares a builtin exclude", Policy{Mode: ModeInclude, Include: []Entry{ex("10.0.0.0/8", "corp")}, Exclude: DefaultPolicy().Exclude}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("Validate() = %q, want %q", got, tt.want)
			}
		})
	}
}
