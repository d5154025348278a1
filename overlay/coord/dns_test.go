package coord

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/overlay/wire"
)

// dnsHarness is a coordinator with a connector serving 10.1.0.0/16 and
// fd00:1::/64.
func dnsHarness(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t)
	h.enroll(wire.RoleConnector, "office")
	for _, p := range []string{"10.1.0.0/16", "fd00:1::/64"} {
		if _, err := h.c.AddRoute(context.Background(), wire.AddRouteRequest{Prefix: p, Connector: "office"}); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestSetDNS(t *testing.T) {
	h := dnsHarness(t)
	ctx := context.Background()
	for _, req := range []wire.SetDNSRequest{
		{Domain: "Corp.Example.", Servers: []string{"10.1.0.53"}},
		{Domain: "lab.example", Servers: []string{" fd00:1::53 ", "::ffff:10.1.0.54"}},
		// Adding again replaces the servers.
		{Domain: "corp.example", Servers: []string{"10.1.0.54", "10.1.0.53"}},
	} {
		if _, err := h.c.SetDNS(ctx, req); err != nil {
			t.Fatalf("SetDNS(%+v): %v", req, err)
		}
	}
	at := h.clock.Now()
	want := []wire.DNSDomain{
		{Domain: "corp.example", Servers: addrs("10.1.0.54", "10.1.0.53"), UpdatedAt: at},
		{Domain: "lab.example", Servers: addrs("fd00:1::53", "10.1.0.54"), UpdatedAt: at},
	}
	if diff := cmp.Diff(want, h.c.DNS(), netipEqual); diff != "" {
		t.Errorf("DNS (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, h.c.Export().DNS, netipEqual); diff != "" {
		t.Errorf("Export().DNS (-want +got):\n%s", diff)
	}

	nine := make([]string, 9)
	for i := range nine {
		nine[i] = netip.AddrFrom4([4]byte{10, 1, 0, byte(i + 1)}).String()
	}
	before := h.c.Export()
	for _, tt := range []struct {
		name       string
		req        wire.SetDNSRequest
		code, want string
	}{
		{"empty domain", wire.SetDNSRequest{Domain: "", Servers: []string{"10.1.0.53"}}, wire.CodeInvalid,
			`"" is not a domain name (for example corp.example)`},
		{"root", wire.SetDNSRequest{Domain: ".", Servers: []string{"10.1.0.53"}}, wire.CodeInvalid,
			`"." is not a domain name (for example corp.example)`},
		{"two trailing dots", wire.SetDNSRequest{Domain: "corp.example..", Servers: []string{"10.1.0.53"}}, wire.CodeInvalid,
			`domain name "corp.example.." has an empty label`},
		{"leading dot", wire.SetDNSRequest{Domain: ".corp.example", Servers: []string{"10.1.0.53"}}, wire.CodeInvalid,
			`domain name ".corp.example" has an empty label`},
		{"underscore", wire.SetDNSRequest{Domain: "my_corp.example", Servers: []string{"10.1.0.53"}}, wire.CodeInvalid,
			`domain name "my_corp.example" may hold only letters, digits and inner hyphens in each label`},
		{"hyphen edge", wire.SetDNSRequest{Domain: "-corp.example", Servers: []string{"10.1.0.53"}}, wire.CodeInvalid,
			`domain name "-corp.example" may hold only letters, digits and inner hyphens in each label`},
		{"long label", wire.SetDNSRequest{Domain: strings.Repeat("a", 64) + ".example", Servers: []string{"10.1.0.53"}}, wire.CodeInvalid,
			`domain name "` + strings.Repeat("a", 64) + `.example" has a label longer than 63 characters`},
		{"host suffix", wire.SetDNSRequest{Domain: "Warren.Internal.", Servers: []string{"10.1.0.53"}}, wire.CodeInvalid,
			`warren.internal is under the host suffix warren.internal, whose names are the named hosts (warren hosts add NAME IP)`},
		{"under host suffix", wire.SetDNSRequest{Domain: "x.warren.internal", Servers: []string{"10.1.0.53"}}, wire.CodeInvalid,
			`x.warren.internal is under the host suffix warren.internal, whose names are the named hosts (warren hosts add NAME IP)`},
		{"no servers", wire.SetDNSRequest{Domain: "x.example"}, wire.CodeInvalid, `no dns server given (--server IP)`},
		{"nine servers", wire.SetDNSRequest{Domain: "x.example", Servers: nine}, wire.CodeInvalid, `9 dns servers given; at most 8`},
		{"prefix", wire.SetDNSRequest{Domain: "x.example", Servers: []string{"10.1.0.0/24"}}, wire.CodeInvalid,
			`dns server "10.1.0.0/24" is not an IP address (for example 192.168.0.53)`},
		{"zone", wire.SetDNSRequest{Domain: "x.example", Servers: []string{"fe80::1%eth0"}}, wire.CodeInvalid,
			`dns server "fe80::1%eth0" is not an IP address (for example 192.168.0.53)`},
		{"unspecified", wire.SetDNSRequest{Domain: "x.example", Servers: []string{"0.0.0.0"}}, wire.CodeInvalid,
			`dns server 0.0.0.0 is the unspecified address, not a server`},
		{"twice", wire.SetDNSRequest{Domain: "x.example", Servers: []string{"10.1.0.53", "::ffff:10.1.0.53"}}, wire.CodeInvalid,
			`dns server 10.1.0.53 is given twice`},
		{"not routed", wire.SetDNSRequest{Domain: "x.example", Servers: []string{"10.1.0.53", "10.9.0.53"}}, wire.CodeInvalid,
			`dns server 10.9.0.53 is not inside any routed prefix: its queries would not reach a connector (warren routes add PREFIX --connector NAME)`},
		{"replace with unrouted", wire.SetDNSRequest{Domain: "corp.example", Servers: []string{"fd00:2::53"}}, wire.CodeInvalid,
			`dns server fd00:2::53 is not inside any routed prefix: its queries would not reach a connector (warren routes add PREFIX --connector NAME)`},
	} {
		_, err := h.c.SetDNS(ctx, tt.req)
		var we *wire.Error
		if !errors.As(err, &we) || we.Code != tt.code || we.Message != tt.want {
			t.Errorf("%s: SetDNS(%q, %q) = %v; want %s: %s", tt.name, tt.req.Domain, tt.req.Servers, err, tt.code, tt.want)
		}
	}
	if diff := cmp.Diff(before, h.c.Export(), netipEqual); diff != "" {
		t.Errorf("refused changes changed state (-before +after):\n%s", diff)
	}

	// A coordinator restarted on the same store knows the domains.
	c2, err := New(ctx, Config{Store: h.store, URL: "https://198.51.100.10:8443"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, c2.DNS(), netipEqual); diff != "" {
		t.Errorf("after restart (-want +got):\n%s", diff)
	}
}

func TestRemoveDNS(t *testing.T) {
	h := dnsHarness(t)
	ctx := context.Background()
	if _, err := h.c.SetDNS(ctx, wire.SetDNSRequest{Domain: "corp.example", Servers: []string{"10.1.0.53"}}); err != nil {
		t.Fatal(err)
	}
	v := h.c.Version()
	if err := h.c.RemoveDNS(ctx, "CORP.example."); err != nil {
		t.Fatalf("RemoveDNS: %v", err)
	}
	if h.c.Version() <= v {
		t.Errorf("version %d did not grow past %d", h.c.Version(), v)
	}
	if got := h.c.DNS(); len(got) != 0 {
		t.Errorf("DNS after remove = %v, want none", got)
	}
	for _, tt := range []struct{ domain, code, want string }{
		{"corp.example", wire.CodeNotFound, `no dns domain corp.example (see: warren dns ls)`},
		{"a..b", wire.CodeInvalid, `domain name "a..b" has an empty label`},
	} {
		err := h.c.RemoveDNS(ctx, tt.domain)
		var we *wire.Error
		if !errors.As(err, &we) || we.Code != tt.code || we.Message != tt.want {
			t.Errorf("RemoveDNS(%q) = %v; want %s: %s", tt.domain, err, tt.code, tt.want)
		}
	}
}

// TestRemoveRouteKeepsDNSReachable: a route a DNS server depends on is
// not removed while no other route covers the server.
func TestRemoveRouteKeepsDNSReachable(t *testing.T) {
	h := dnsHarness(t)
	ctx := context.Background()
	if _, err := h.c.AddRoute(ctx, wire.AddRouteRequest{Prefix: "10.1.0.0/24", Connector: "office"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.c.SetDNS(ctx, wire.SetDNSRequest{Domain: "corp.example", Servers: []string{"fd00:1::53", "10.1.0.53"}}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		prefix string
		want   string // "" for success
	}{
		// 10.1.0.0/16 still covers 10.1.0.53.
		{"10.1.0.0/24", ""},
		{"10.1.0.0/16", `dns server 10.1.0.53 of corp.example is inside no other route: its queries would reach no connector; remove the domain first (warren dns rm corp.example) or give it other servers (warren dns add corp.example --server IP)`},
		{"fd00:1::/64", `dns server fd00:1::53 of corp.example is inside no other route: its queries would reach no connector; remove the domain first (warren dns rm corp.example) or give it other servers (warren dns add corp.example --server IP)`},
	} {
		before := h.c.Export()
		err := h.c.RemoveRoute(ctx, tt.prefix)
		if tt.want == "" {
			if err != nil {
				t.Errorf("RemoveRoute(%s): %v", tt.prefix, err)
			}
			continue
		}
		var we *wire.Error
		if !errors.As(err, &we) || we.Code != wire.CodeConflict || we.Message != tt.want {
			t.Errorf("RemoveRoute(%s) = %v; want conflict: %s", tt.prefix, err, tt.want)
		}
		if diff := cmp.Diff(before, h.c.Export(), netipEqual); diff != "" {
			t.Errorf("refused RemoveRoute(%s) changed state (-before +after):\n%s", tt.prefix, diff)
		}
	}
	// Without the domain the routes go.
	if err := h.c.RemoveDNS(ctx, "corp.example"); err != nil {
		t.Fatal(err)
	}
	if err := h.c.RemoveRoute(ctx, "10.1.0.0/16"); err != nil {
		t.Errorf("RemoveRoute after dns rm: %v", err)
	}
}

func TestHostSuffixConfig(t *testing.T) {
	for _, tt := range []struct{ in, want, err string }{
		{"", "warren.internal", ""},
		{"Corp.Lan.", "corp.lan", ""},
		{"bad_suffix", "", `coordinator: host suffix: domain name "bad_suffix" may hold only letters, digits and inner hyphens in each label`},
	} {
		h := newHarness(t)
		c, err := New(context.Background(), Config{Store: h.store, URL: "https://198.51.100.10:8443", HostSuffix: tt.in})
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("New(HostSuffix %q) = %v, want %s", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("New(HostSuffix %q): %v", tt.in, err)
		}
		if got := c.HostSuffix(); got != tt.want {
			t.Errorf("HostSuffix(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestStreamPushesDNS: a client's netmap carries the domains sorted and
// the host suffix; a connector's carries neither.
func TestStreamPushesDNS(t *testing.T) {
	h := dnsHarness(t)
	ctx := context.Background()
	laptop := h.enroll(wire.RoleClient, "laptop")
	office, _ := h.c.snap.Load().nodeByName("office")
	lc, oc := newFakeConn(), newFakeConn()
	h.serve(laptop.Node, lc)
	nm := nextNetMap(t, lc)
	if nm.HostSuffix != "warren.internal" || len(nm.DNS) != 0 {
		t.Fatalf("first netmap: host suffix %q, dns %v; want warren.internal, none", nm.HostSuffix, nm.DNS)
	}
	h.serve(office.Node, oc)
	nextNetMap(t, oc)
	nextNetMap(t, lc) // office online

	for _, req := range []wire.SetDNSRequest{
		{Domain: "lab.example", Servers: []string{"fd00:1::53"}},
		{Domain: "corp.example", Servers: []string{"10.1.0.53", "10.1.0.54"}},
	} {
		v := h.c.Version()
		if _, err := h.c.SetDNS(ctx, req); err != nil {
			t.Fatal(err)
		}
		if h.c.Version() <= v {
			t.Errorf("SetDNS(%s) left the version at %d", req.Domain, v)
		}
		nm = nextNetMap(t, lc)
	}
	want := []wire.NetMapDNS{
		{Domain: "corp.example", Servers: addrs("10.1.0.53", "10.1.0.54")},
		{Domain: "lab.example", Servers: addrs("fd00:1::53")},
	}
	if diff := cmp.Diff(want, nm.DNS, netipEqual); diff != "" {
		t.Errorf("laptop's netmap dns (-want +got):\n%s", diff)
	}
	if nm.Version != h.c.Version() {
		t.Errorf("pushed version %d, coordinator at %d", nm.Version, h.c.Version())
	}

	if err := h.c.RemoveDNS(ctx, "lab.example"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want[:1], nextNetMap(t, lc).DNS, netipEqual); diff != "" {
		t.Errorf("after rm (-want +got):\n%s", diff)
	}
	// The connector's netmap did not change, so it got nothing; ask it
	// for its netmap directly.
	if onm := h.c.netMap(h.c.snap.Load(), office.Node); len(onm.DNS) != 0 || onm.HostSuffix != "" {
		t.Errorf("connector's netmap: dns %v, host suffix %q; want neither", onm.DNS, onm.HostSuffix)
	}
}
