package split

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Mode chooses how a Policy's lists are read.
type Mode string

// Split-tunnel modes.
const (
	// ModeExclude tunnels every routed prefix except what the exclude list
	// removes. It is the default.
	ModeExclude Mode = "exclude"
	// ModeInclude tunnels only the routed space the include list names.
	ModeInclude Mode = "include"
)

// Entry is one prefix of a split-tunnel list.
type Entry struct {
	Prefix netip.Prefix
	// Comment says why the entry is there, in one line.
	Comment string
	// Builtin marks an entry of the default exclude list, as opposed to
	// one an admin wrote. Routed space is carved out of builtin entries;
	// only an admin's entry can shadow a route.
	Builtin bool
}

// String formats e for reasons and warnings: the prefix, then the comment
// in parentheses when there is one.
func (e Entry) String() string {
	if e.Comment == "" {
		return e.Prefix.String()
	}
	return fmt.Sprintf("%v (%s)", e.Prefix, e.Comment)
}

// Policy is the admin's split-tunnel setting. Each mode keeps its own list,
// so switching modes loses nothing: the list of the other mode is ignored.
type Policy struct {
	Mode    Mode
	Include []Entry
	Exclude []Entry
}

// defaultExcludes is the builtin exclude list, in canonical order.
var defaultExcludes = []struct{ prefix, comment string }{
	{"10.0.0.0/8", "private network, RFC 1918"},
	{"100.64.0.0/10", "carrier-grade NAT, RFC 6598"},
	{"169.254.0.0/16", "link-local"},
	{"172.16.0.0/12", "private network, RFC 1918"},
	{"192.0.0.0/24", "IETF protocol assignments"},
	{"192.168.0.0/16", "private network, RFC 1918"},
	{"224.0.0.0/24", "local network control multicast"},
	{"240.0.0.0/4", "reserved"},
	{"255.255.255.255/32", "limited broadcast"},
	{"fd00::/8", "IPv6 unique local"},
	{"fe80::/10", "IPv6 link-local"},
	{"ff01::/16", "interface-local multicast"},
	{"ff02::/16", "link-local multicast"},
	{"ff03::/16", "realm-local multicast"},
	{"ff04::/16", "admin-local multicast"},
	{"ff05::/16", "site-local multicast"},
}

// DefaultPolicy returns the policy a new coordinator starts with: exclude
// mode, the builtin exclude list and an empty include list. Each call
// returns fresh slices.
func DefaultPolicy() Policy {
	p := Policy{Mode: ModeExclude, Include: []Entry{}, Exclude: make([]Entry, 0, len(defaultExcludes))}
	for _, d := range defaultExcludes {
		p.Exclude = append(p.Exclude, Entry{Prefix: netip.MustParsePrefix(d.prefix), Comment: d.comment, Builtin: true})
	}
	return p
}

// Validate checks p and returns the first problem as a lowercase one-line
// error naming the entry: the mode must be include or exclude; every prefix
// must be canonical (valid, no host bits, IPv4 written as IPv4); comments
// must be one printable line; only exclude entries may be builtin; no list
// may hold the same prefix twice; and no prefix may be both included and
// excluded by an admin. A builtin exclude may share its prefix with an
// include, so that switching to include mode never forces the admin to
// delete builtin entries first.
func (p Policy) Validate() error {
	if p.Mode != ModeInclude && p.Mode != ModeExclude {
		return fmt.Errorf("unknown split mode %q; want %q or %q", p.Mode, ModeInclude, ModeExclude)
	}
	lists := []struct {
		name    string
		entries []Entry
	}{{"include", p.Include}, {"exclude", p.Exclude}}
	for _, l := range lists {
		seen := make(map[netip.Prefix]bool, len(l.entries))
		for i, e := range l.entries {
			if err := checkEntry(l.name, i, e); err != nil {
				return err
			}
			if seen[e.Prefix] {
				return fmt.Errorf("%s %v is listed twice", l.name, e.Prefix)
			}
			seen[e.Prefix] = true
		}
	}
	excluded := make(map[netip.Prefix]bool, len(p.Exclude))
	for _, e := range p.Exclude {
		if !e.Builtin {
			excluded[e.Prefix] = true
		}
	}
	for _, e := range p.Include {
		if excluded[e.Prefix] {
			return fmt.Errorf("%v is in both the include and the exclude list", e.Prefix)
		}
	}
	return nil
}

// checkEntry checks entry i of the named list on its own.
func checkEntry(list string, i int, e Entry) error {
	p := e.Prefix
	switch {
	case !p.IsValid():
		return fmt.Errorf("%s entry %d has no valid prefix", list, i+1)
	case p.Addr().Is4In6() && p.Bits() >= 96:
		v4 := netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96).Masked()
		return fmt.Errorf("%s %v is an IPv4-mapped IPv6 prefix; did you mean %v?", list, p, v4)
	case p != p.Masked():
		return fmt.Errorf("%s %v has host bits set; did you mean %v?", list, p, p.Masked())
	case !utf8.ValidString(e.Comment) || strings.ContainsFunc(e.Comment, func(r rune) bool { return !unicode.IsPrint(r) }):
		return fmt.Errorf("%s %v has a comment that is not one printable line", list, p)
	case e.Builtin && list == "include":
		return fmt.Errorf("include %v is marked builtin; only exclude entries can be builtin", p)
	}
	return nil
}
