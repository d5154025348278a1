package dnsres

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
)

var addrPorts = cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })

var routeCfg = Config{
	Hosts: []Host{
		{Name: "production-server", Addrs: []netip.Addr{netip.MustParseAddr("192.168.0.10")}},
		{Name: "db", Addrs: []netip.Addr{netip.MustParseAddr("192.168.0.10"), netip.MustParseAddr("::ffff:192.168.0.20")}},
		{Name: "two.labels", Addrs: []netip.Addr{netip.MustParseAddr("fd00::1")}},
	},
	HostSuffix: "warren.internal",
	Domains: []Domain{
		{Suffix: "corp.example", Servers: []netip.Addr{netip.MustParseAddr("10.0.0.1")}},
		{Suffix: "eu.corp.example", Servers: []netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")}},
		{Suffix: "Example", Servers: []netip.Addr{netip.MustParseAddr("10.0.0.4")}},
		{Suffix: `a\.b.test`, Servers: []netip.Addr{netip.MustParseAddr("10.0.0.5")}},
	},
	Fallback: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.53:53")},
}

func TestRoute(t *testing.T) {
	r := New(Options{})
	if err := r.Set(routeCfg); err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort
	fallback := []netip.AddrPort{ap("127.0.0.53:53")}
	tests := []struct {
		name string
		want Decision
	}{
		{"production-server", Decision{Action: Answer, Name: "production-server.", Hosts: []string{"production-server"}}},
		{"PRODUCTION-server.warren.INTERNAL.", Decision{Action: Answer, Name: "production-server.warren.internal.", Hosts: []string{"production-server"}}},
		{"two.labels", Decision{Action: Answer, Name: "two.labels.", Hosts: []string{"two.labels"}}},
		{"two.labels.warren.internal", Decision{Action: Answer, Name: "two.labels.warren.internal.", Hosts: []string{"two.labels"}}},
		{"10.0.168.192.in-addr.arpa.", Decision{Action: Answer, Name: "10.0.168.192.in-addr.arpa.", Hosts: []string{"db", "production-server"}}},
		{"20.0.168.192.in-addr.arpa.", Decision{Action: Answer, Name: "20.0.168.192.in-addr.arpa.", Hosts: []string{"db"}}},
		{"11.0.168.192.in-addr.arpa.", Decision{Action: Fallback, Name: "11.0.168.192.in-addr.arpa.", Servers: fallback}},
		{"nope.warren.internal", Decision{Action: NotFound, Name: "nope.warren.internal."}},
		{"a.db.warren.internal", Decision{Action: NotFound, Name: "a.db.warren.internal."}},
		{"warren.internal", Decision{Action: NotFound, Name: "warren.internal."}},
		{"xwarren.internal", Decision{Action: Fallback, Name: "xwarren.internal.", Servers: fallback}},
		{"corp.example", Decision{Action: Forward, Name: "corp.example.", Domain: "corp.example", Servers: []netip.AddrPort{ap("10.0.0.1:53")}}},
		{"host.Corp.Example.", Decision{Action: Forward, Name: "host.corp.example.", Domain: "corp.example", Servers: []netip.AddrPort{ap("10.0.0.1:53")}}},
		{"a.b.eu.corp.example", Decision{Action: Forward, Name: "a.b.eu.corp.example.", Domain: "eu.corp.example", Servers: []netip.AddrPort{ap("10.0.0.2:53"), ap("10.0.0.3:53")}}},
		{"xeu.corp.example", Decision{Action: Forward, Name: "xeu.corp.example.", Domain: "corp.example", Servers: []netip.AddrPort{ap("10.0.0.1:53")}}},
		{"xcorp.example", Decision{Action: Forward, Name: "xcorp.example.", Domain: "example", Servers: []netip.AddrPort{ap("10.0.0.4:53")}}},
		{"example", Decision{Action: Forward, Name: "example.", Domain: "example", Servers: []netip.AddrPort{ap("10.0.0.4:53")}}},
		{"nexample", Decision{Action: Fallback, Name: "nexample.", Servers: fallback}},
		{`x.a\.b.test`, Decision{Action: Forward, Name: `x.a\.b.test.`, Domain: `a\.b.test`, Servers: []netip.AddrPort{ap("10.0.0.5:53")}}},
		{`x.a.b.test`, Decision{Action: Fallback, Name: "x.a.b.test.", Servers: fallback}},
		{`b.test`, Decision{Action: Fallback, Name: "b.test.", Servers: fallback}},
		{"localhost", Decision{Action: Fallback, Name: "localhost.", Servers: fallback}},
		{".", Decision{Action: Fallback, Name: ".", Servers: fallback}},
		{"", Decision{Action: Invalid, Name: ""}},
		{"a..b", Decision{Action: Invalid, Name: "a..b"}},
	}
	for _, tt := range tests {
		got := r.Route(tt.name)
		if diff := cmp.Diff(tt.want, got, addrPorts); diff != "" {
			t.Errorf("Route(%q) (-want +got):\n%s", tt.name, diff)
		}
	}
}

func TestSetInvalid(t *testing.T) {
	ip := netip.MustParseAddr
	good := Domain{Suffix: "corp.example", Servers: []netip.Addr{ip("10.0.0.1")}}
	tests := []struct {
		name string
		cfg  Config
	}{
		{"trailing dot suffix", Config{HostSuffix: "warren.internal."}},
		{"bad suffix", Config{HostSuffix: "a..b"}},
		{"empty host", Config{Hosts: []Host{{Name: "", Addrs: []netip.Addr{ip("10.0.0.1")}}}}},
		{"host without address", Config{Hosts: []Host{{Name: "db"}}}},
		{"host with invalid address", Config{Hosts: []Host{{Name: "db", Addrs: []netip.Addr{{}}}}}},
		{"host twice, other case", Config{Hosts: []Host{{Name: "db", Addrs: []netip.Addr{ip("10.0.0.1")}}, {Name: "DB", Addrs: []netip.Addr{ip("10.0.0.2")}}}}},
		{"host name clashes with another's full name", Config{HostSuffix: "w", Hosts: []Host{{Name: "db", Addrs: []netip.Addr{ip("10.0.0.1")}}, {Name: "db.w", Addrs: []netip.Addr{ip("10.0.0.2")}}}}},
		{"domain trailing dot", Config{Domains: []Domain{{Suffix: "corp.example.", Servers: []netip.Addr{ip("10.0.0.1")}}}}},
		{"domain root", Config{Domains: []Domain{{Suffix: ".", Servers: []netip.Addr{ip("10.0.0.1")}}}}},
		{"domain twice", Config{Domains: []Domain{good, {Suffix: "CORP.example", Servers: []netip.Addr{ip("10.0.0.2")}}}}},
		{"domain without server", Config{Domains: []Domain{{Suffix: "corp.example"}}}},
		{"domain with invalid server", Config{Domains: []Domain{{Suffix: "corp.example", Servers: []netip.Addr{{}}}}}},
		{"fallback without port", Config{Fallback: []netip.AddrPort{netip.AddrPortFrom(ip("127.0.0.53"), 0)}}},
	}
	for _, tt := range tests {
		r := New(Options{})
		if err := r.Set(routeCfg); err != nil {
			t.Fatal(err)
		}
		before := r.Route("host.corp.example")
		err := r.Set(tt.cfg)
		if !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Set = %v, want ErrInvalidConfig", tt.name, err)
		}
		if diff := cmp.Diff(before, r.Route("host.corp.example"), addrPorts); diff != "" {
			t.Errorf("%s: a refused Set changed the routing (-before +after):\n%s", tt.name, diff)
		}
	}
}

// wireLabels is the slow reference's view of a name: its labels as the
// bytes on the wire (escapes decoded by packing), ASCII-lowercased, or
// false when the name does not pack.
func wireLabels(name string) ([]string, bool) {
	buf := make([]byte, 256)
	off, err := dns.PackDomainName(dns.Fqdn(name), buf, 0, nil, false)
	if err != nil || name == "" {
		return nil, false
	}
	var labels []string
	for i := 0; i < off && buf[i] != 0; i += 1 + int(buf[i]) {
		labels = append(labels, asciiLower(string(buf[i+1:i+1+int(buf[i])])))
	}
	return labels, true
}

// hasLabelSuffix reports whether suffix's labels end name's labels.
func hasLabelSuffix(name, suffix []string) bool {
	return len(suffix) <= len(name) && slices.Equal(name[len(name)-len(suffix):], suffix)
}

// refRoute is the slow reference of snapshot.route's Action and Domain:
// every candidate compared label by label, the longest domain kept.
func refRoute(cfg Config, name string) (Action, string) {
	n, ok := wireLabels(name)
	if !ok {
		return Invalid, ""
	}
	suffix, _ := wireLabels(cfg.HostSuffix)
	for _, h := range cfg.Hosts {
		hl, _ := wireLabels(h.Name)
		if slices.Equal(n, hl) || slices.Equal(n, append(slices.Clone(hl), suffix...)) {
			return Answer, ""
		}
		for _, a := range h.Addrs {
			rev, _ := dns.ReverseAddr(a.Unmap().String())
			rl, _ := wireLabels(rev)
			if slices.Equal(n, rl) {
				return Answer, ""
			}
		}
	}
	if cfg.HostSuffix != "" && hasLabelSuffix(n, suffix) {
		return NotFound, ""
	}
	best, bestLen := "", -1
	for _, d := range cfg.Domains {
		dl, _ := wireLabels(d.Suffix)
		if hasLabelSuffix(n, dl) && len(dl) > bestLen {
			best, bestLen = d.Suffix, len(dl)
		}
	}
	if bestLen >= 0 {
		return Forward, best
	}
	return Fallback, ""
}

func FuzzRoute(f *testing.F) {
	for _, s := range []string{
		"production-server", "db.warren.internal.", "x.warren.internal", "xcorp.example", "a.eu.corp.example",
		`x.a\.b.test`, "x.a.b.test", `a\046b.test`, `\065.corp.example`, "10.0.168.192.in-addr.arpa.", ".", "", "a..b",
	} {
		f.Add(s, "other.corp.example")
	}
	f.Fuzz(func(t *testing.T, name, extra string) {
		cfg := routeCfg
		if _, ok := canonical(extra); ok && !slices.ContainsFunc(cfg.Domains, func(d Domain) bool {
			a, _ := canonical(d.Suffix)
			b, _ := canonical(extra)
			return a == b
		}) {
			cfg.Domains = append(slices.Clone(cfg.Domains), Domain{Suffix: extra, Servers: []netip.Addr{netip.MustParseAddr("10.9.9.9")}})
		}
		s, err := build(cfg)
		if err != nil {
			return // a trailing dot or the like: Set refuses it, nothing to route
		}
		got := s.route(name)
		wantAction, wantDomain := refRoute(cfg, name)
		if got.Action != wantAction {
			t.Fatalf("route(%q) with %q = %v, want %v", name, extra, got.Action, wantAction)
		}
		if wantAction == Forward {
			if a, b := got.Domain+".", asciiLower(dns.Fqdn(wantDomain)); !sameName(a, b) {
				t.Fatalf("route(%q) with %q: domain %q, want %q", name, extra, got.Domain, wantDomain)
			}
		}
	})
}

// sameName compares two names by their wire labels.
func sameName(a, b string) bool {
	la, _ := wireLabels(a)
	lb, _ := wireLabels(b)
	return slices.Equal(la, lb)
}
