package policy

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/warrennet/warren/overlay/wire"
)

// equateNetip compares netip values with ==.
var equateNetip = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})

var (
	testHosts = map[string]netip.Addr{
		"production-server": addr("192.168.0.10"),
		"db":                addr("192.168.1.20"),
		"v6box":             addr("2001:db8::10"),
		"mapped":            addr("::ffff:192.168.0.77"),
	}
	testRoutes = []netip.Prefix{pfx("192.168.0.0/23"), pfx("10.0.0.0/8"), pfx("2001:db8::/64")}
	testEnv    = Env{
		Users:  []string{"alice@example.com", "bob@example.com", "carol@example.com"},
		Hosts:  testHosts,
		Routes: testRoutes,
	}
)

func mustParse(t testing.TB, text string) *Document {
	t.Helper()
	doc, err := Parse([]byte(text))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return doc
}

func mustCompile(t testing.TB, text string) *Compiled {
	t.Helper()
	c, _, err := Compile(mustParse(t, text), testEnv, Options{Strict: true})
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return c
}

// rules builds a document text from rule lines, one rule a line from
// line 3 on.
func rules(rs ...string) string {
	return "{\"groups\": {\"eng\": [\"alice@example.com\", \"dave@example.com\"], \"ops\": [\"bob@example.com\"], \"empty\": []},\n" +
		"\"rules\": [\n" + strings.Join(rs, ",\n") + "\n]}"
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name, text string
		opt        Options
		want       string
	}{
		{
			name: "undeclared host",
			text: rules(`{"from": ["*"], "to": ["db:5432", "cache:6379"]}`),
			want: `line 3: destination "cache:6379": host "cache" is not declared (warren hosts add cache IP)`,
		},
		{
			name: "unknown user",
			text: rules(`{"from": ["group:eng"], "to": ["db:5432"]}`, `{"from": ["user:erin@example.com"], "to": ["db:5432"]}`),
			opt:  Options{Strict: true},
			want: `line 4: unknown user "erin@example.com": no token or node carries it and no group lists it`,
		},
		{
			name: "no rules",
			text: "{\"groups\": {},\n\"rules\": []}",
			want: "line 2: the document has no rules, so it denies everything: ask for deny-all if that is what you want",
		},
		{
			name: "no rules key",
			text: `{}`,
			want: "line 1: the document has no rules, so it denies everything: ask for deny-all if that is what you want",
		},
		{
			name: "unknown test user",
			text: `{"rules": [{"from": ["*"], "to": ["db:*"]}], "tests": [
{"user": "erin@example.com", "deny": ["db:22"]}]}`,
			opt:  Options{Strict: true},
			want: `line 2: test: unknown user "erin@example.com": no token or node carries it and no group lists it`,
		},
		{
			name: "test names an undeclared host",
			text: `{"rules": [{"from": ["*"], "to": ["db:*"]}], "tests": [{"user": "erin@example.com", "deny": [
"cache:22"]}]}`,
			want: `line 2: test destination "cache:22": host "cache" is not declared (warren hosts add cache IP)`,
		},
		{
			name: "test wants allow",
			text: `{"groups": {"eng": ["alice@example.com"]},
"rules": [
  {"from": ["group:eng"], "to": ["192.168.0.0/24:22"]},
],
"tests": [{"user": "alice@example.com", "allow": ["192.168.0.10:22",
  "192.168.0.10:22/udp"]}]}`,
			want: "line 6: test failed: alice@example.com → 192.168.0.10:22/udp should be allowed, but no rule allows it",
		},
		{
			name: "test wants deny",
			text: `{"groups": {"eng": ["alice@example.com"]},
"rules": [
  {"from": ["user:bob@example.com"], "to": ["10.0.0.0/8:*"]},
  {"from": ["group:eng"], "to": ["192.168.0.0/24:*"]},
  {"from": ["*"], "to": ["production-server:8000-9000"]},
],
"tests": [{"user": "alice@example.com", "allow": ["192.168.0.10:22"],
  "deny": ["production-server:8080"]}]}`,
			want: "line 8: test failed: alice@example.com → production-server:8080/tcp (192.168.0.10) should be denied, but rule 2 (line 4) allows it: group:eng → 192.168.0.0/24:*/tcp",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _, err := Compile(mustParse(t, tt.text), testEnv, tt.opt)
			if err == nil {
				t.Fatalf("Compile = %v, want error %q", c, tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("Compile error\n got: %s\nwant: %s", got, tt.want)
			}
		})
	}
}

func TestCompileLenient(t *testing.T) {
	// Users that nothing carries any more do not stop a stored document
	// from loading; policy set (Strict) refuses them.
	text := `{"rules": [{"from": ["user:erin@example.com"], "to": ["db:*"]}],
"tests": [{"user": "erin@example.com", "allow": ["db:22"]}]}`
	doc := mustParse(t, text)
	if _, _, err := Compile(doc, testEnv, Options{}); err != nil {
		t.Errorf("lenient Compile: %v", err)
	}
	if _, _, err := Compile(doc, testEnv, Options{Strict: true}); err == nil {
		t.Errorf("strict Compile accepts an unknown user")
	}
	// A user a group lists is known.
	text = `{"groups": {"x": ["erin@example.com"]}, "rules": [{"from": ["user:erin@example.com"], "to": ["db:*"]}]}`
	if _, _, err := Compile(mustParse(t, text), testEnv, Options{Strict: true}); err != nil {
		t.Errorf("strict Compile with a grouped user: %v", err)
	}
}

func TestCompileDenyAll(t *testing.T) {
	doc := mustParse(t, `{"rules": [], "tests": [{"user": "alice@example.com", "deny": ["192.168.0.10:22", "192.168.0.10/icmp"]}]}`)
	c, _, err := Compile(doc, testEnv, Options{DenyAll: true, Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	if d := c.Decide("alice@example.com", addr("192.168.0.10"), 22, wire.ProtoTCP); d.Allow {
		t.Errorf("deny-all allows: %+v", d)
	}
	if gs := c.Grants("alice@example.com"); len(gs) != 0 {
		t.Errorf("deny-all grants %v", gs)
	}
}

func TestCompileBuiltInCode(t *testing.T) {
	doc := &Document{Rules: []Rule{{From: []string{"*"}, To: []string{"10.0.0.0/8:22", "10.0.0.1/8:22"}}}}
	_, _, err := Compile(doc, testEnv, Options{})
	want := `rules[0].to[1]: destination "10.0.0.1/8:22": 10.0.0.1/8 has host bits set; did you mean 10.0.0.0/8?`
	if err == nil || err.Error() != want {
		t.Errorf("Compile error = %v, want %q", err, want)
	}
	if _, _, err := Compile(nil, testEnv, Options{}); err == nil {
		t.Errorf("Compile(nil) succeeds")
	}
	doc = &Document{Rules: []Rule{{From: []string{"*"}, To: []string{"10.0.0.0/8:22"}}}}
	c, _, err := Compile(doc, testEnv, Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := c.Decide("", addr("10.1.1.1"), 22, wire.ProtoTCP)
	if want := "allowed by rule 1: * → 10.0.0.0/8:22/tcp"; d.Reason != want {
		t.Errorf("reason %q, want %q", d.Reason, want)
	}
}

func TestCompileWarnings(t *testing.T) {
	text := rules(
		`{"from": ["group:eng"], "to": ["192.168.0.0/24:22", "10.9.0.0/16:22", "db:5432"]}`,
		`{"from": ["group:empty", "user:bob@example.com"], "to": ["192.168.5.0/24:*", "[2001:db8::/32]:443"]}`,
		`{"from": ["*"], "to": ["v6box:22", "[2001:db9::1]:22", "0.0.0.0/0:443"]}`,
	)
	_, warnings, err := Compile(mustParse(t, text), Env{Hosts: testHosts, Routes: []netip.Prefix{pfx("10.9.0.0/24"), pfx("192.168.0.0/24"), pfx("2001:db8::/64")}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"line 3: db:5432 (192.168.1.20) matches no routed prefix: the rule can never apply",
		"line 4: group:empty has no members: it lets no one through",
		"line 4: 192.168.5.0/24:* matches no routed prefix: the rule can never apply",
		"line 5: [2001:db9::1]:22 matches no routed prefix: the rule can never apply",
	}
	if diff := cmp.Diff(want, warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

// decisionDoc exercises users, groups, hosts, ports, ranges, protocols,
// overlapping rules and *.
const decisionDoc = `{
  "groups": {"eng": ["alice@example.com", "dave@example.com"], "ops": ["bob@example.com"]},
  "rules": [
    {"from": ["group:eng"], "to": ["192.168.0.0/24:22", "production-server:443"]},
    {"from": ["user:bob@example.com", "group:eng"], "to": ["192.168.1.0/24:*"], "proto": "any"},
    {"from": ["group:ops"], "to": ["192.168.0.0/23:8000-8999"], "proto": "udp"},
    {"from": ["*"], "to": ["192.168.0.10:443", "[2001:db8::/64]:53"], "proto": "any"},
    {"from": ["user:carol@example.com"], "to": ["192.168.0.0/24:*"], "proto": "icmp"},
    {"from": ["group:eng"], "to": ["192.168.0.0/25:20-25"]},
    {"from": ["group:ops"], "to": ["mapped:*", "v6box:*"]},
  ],
}`

func TestDecide(t *testing.T) {
	c := mustCompile(t, decisionDoc)
	const (
		alice = "alice@example.com"
		bob   = "bob@example.com"
		carol = "carol@example.com"
	)
	tests := []struct {
		name  string
		user  string
		dst   string
		port  uint16
		proto wire.Proto
		rule  int // 0: denied
	}{
		{"group member, exact port", alice, "192.168.0.10", 22, wire.ProtoTCP, 1},
		{"second group member", "dave@example.com", "192.168.0.200", 22, wire.ProtoTCP, 1},
		{"port outside", alice, "192.168.0.10", 8080, wire.ProtoTCP, 0},
		{"default proto is tcp", alice, "192.168.0.10", 22, wire.ProtoUDP, 0},
		{"a host by name", alice, "192.168.0.10", 443, wire.ProtoTCP, 1},
		{"overlap: the lowest rule decides", alice, "192.168.0.20", 22, wire.ProtoTCP, 1},
		{"overlap: a later rule fills in", alice, "192.168.0.20", 21, wire.ProtoTCP, 6},
		{"rule 6 stops at /25", alice, "192.168.0.200", 21, wire.ProtoTCP, 0},
		{"user entry", bob, "192.168.1.7", 5, wire.ProtoUDP, 2},
		{"any covers icmp", bob, "192.168.1.7", 0, wire.ProtoICMP, 2},
		{"group in a second from entry", alice, "192.168.1.7", 65535, wire.ProtoTCP, 2},
		{"range start", bob, "192.168.0.1", 8000, wire.ProtoUDP, 3},
		{"range end across the /23", bob, "192.168.1.1", 8999, wire.ProtoUDP, 2},
		{"range end", bob, "192.168.0.1", 8999, wire.ProtoUDP, 3},
		{"past the range", bob, "192.168.0.1", 9000, wire.ProtoUDP, 0},
		{"range is udp only", bob, "192.168.0.1", 8000, wire.ProtoTCP, 0},
		{"* covers a user", carol, "192.168.0.10", 443, wire.ProtoUDP, 4},
		{"* covers a client without a user", "", "192.168.0.10", 443, wire.ProtoTCP, 4},
		{"* covers unknown users", "zed@example.com", "[2001:db8::1]", 53, wire.ProtoUDP, 4},
		{"no user, no other rule", "", "192.168.0.10", 22, wire.ProtoTCP, 0},
		{"icmp ignores ports", carol, "192.168.0.99", 1234, wire.ProtoICMP, 5},
		{"icmp rule is not tcp", carol, "192.168.0.99", 22, wire.ProtoTCP, 0},
		{"mapped host is unmapped", bob, "192.168.0.77", 1, wire.ProtoTCP, 7},
		{"ipv6 host", bob, "2001:db8::10", 1, wire.ProtoTCP, 7},
		{"an ipv4-mapped flow is ipv6", bob, "::ffff:192.168.0.77", 1, wire.ProtoTCP, 0},
		{"zoned", "zed@example.com", "2001:db8::1%eth0", 53, wire.ProtoUDP, 0},
		{"invalid address", alice, "", 22, wire.ProtoTCP, 0},
		{"users are case-sensitive", "Alice@example.com", "192.168.0.10", 22, wire.ProtoTCP, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var dst netip.Addr
			if tt.dst != "" {
				dst = addr(strings.Trim(tt.dst, "[]"))
			}
			d := c.Decide(tt.user, dst, tt.port, tt.proto)
			if d.Allow != (tt.rule != 0) || d.Rule != tt.rule {
				t.Fatalf("Decide = allow %v rule %d (%s), want rule %d", d.Allow, d.Rule, d.Reason, tt.rule)
			}
			if d.User != tt.user || d.Dest != netip.AddrPortFrom(dst, tt.port) || d.Proto != tt.proto {
				t.Errorf("Decide echoes %q %v %s", d.User, d.Dest, d.Proto)
			}
			if d.RuleText != c.RuleText(tt.rule) {
				t.Errorf("RuleText %q, want %q", d.RuleText, c.RuleText(tt.rule))
			}
			m, _ := NewMatcher(c.Grants(tt.user)).Allow(dst, tt.port, tt.proto)
			if m != tt.rule {
				t.Errorf("Matcher over Grants decides rule %d, want %d", m, tt.rule)
			}
		})
	}
}

func TestDecideReasons(t *testing.T) {
	c := mustCompile(t, decisionDoc)
	tests := []struct {
		user  string
		dst   string
		port  uint16
		proto wire.Proto
		want  string
	}{
		{"alice@example.com", "192.168.0.10", 22, wire.ProtoTCP, "allowed by rule 1 (line 4): group:eng → 192.168.0.0/24:22/tcp, production-server:443/tcp"},
		{"alice@example.com", "192.168.0.10", 8080, wire.ProtoTCP, "denied by policy: no rule lets alice@example.com reach 192.168.0.10:8080/tcp"},
		{"", "2001:db8::1", 22, wire.ProtoUDP, "denied by policy: no rule lets a client without a user reach [2001:db8::1]:22/udp"},
		{"bob@example.com", "10.0.0.1", 0, wire.ProtoICMP, "denied by policy: no rule lets bob@example.com reach 10.0.0.1/icmp"},
		{"bob@example.com", "192.168.0.77", 1, wire.ProtoTCP, "allowed by rule 7 (line 10): group:ops → mapped:*/tcp, v6box:*/tcp"},
	}
	for _, tt := range tests {
		d := c.Decide(tt.user, addr(tt.dst), tt.port, tt.proto)
		if d.Reason != tt.want {
			t.Errorf("Decide(%q, %s, %d, %s).Reason\n got: %s\nwant: %s", tt.user, tt.dst, tt.port, tt.proto, d.Reason, tt.want)
		}
	}
}

func TestDecideAllowAll(t *testing.T) {
	var c *Compiled
	d := c.Decide("alice@example.com", addr("192.168.0.10"), 22, wire.ProtoTCP)
	if !d.Allow || d.Rule != 0 || !strings.Contains(d.Reason, "no policy") {
		t.Errorf("nil Decide = %+v, want allowed, no rule", d)
	}
	if c.Grants("a@b.c") != nil || c.GrantsWithin("a@b.c", testRoutes) != nil || c.Rules(nil) != nil || c.RuleText(1) != "" {
		t.Errorf("nil Compiled has grants or rules")
	}
	if _, ok := c.NamesHost("db"); ok {
		t.Errorf("nil Compiled names a host")
	}
}

// Rules are order-independent: any order allows the same flows.
func TestOrderIndependence(t *testing.T) {
	doc := mustParse(t, decisionDoc)
	base, _, err := Compile(doc, testEnv, Options{})
	if err != nil {
		t.Fatal(err)
	}
	users := []string{"", "alice@example.com", "bob@example.com", "carol@example.com"}
	for shift := 1; shift < len(doc.Rules); shift++ {
		rotated := &Document{Groups: doc.Groups, Rules: append(slices.Clone(doc.Rules[shift:]), doc.Rules[:shift]...)}
		slices.Reverse(rotated.Rules[:shift])
		c, _, err := Compile(rotated, testEnv, Options{})
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range users {
			for _, a := range []string{"192.168.0.10", "192.168.0.200", "192.168.1.7", "192.168.0.77", "2001:db8::10", "2001:db8::1"} {
				for _, port := range []uint16{0, 21, 22, 53, 443, 8000, 8999, 9000} {
					for _, proto := range []wire.Proto{wire.ProtoTCP, wire.ProtoUDP, wire.ProtoICMP} {
						want := base.Decide(u, addr(a), port, proto)
						got := c.Decide(u, addr(a), port, proto)
						if got.Allow != want.Allow {
							t.Fatalf("shift %d: %q %s:%d/%s: got allow %v, want %v", shift, u, a, port, proto, got.Allow, want.Allow)
						}
					}
				}
			}
		}
	}
}

func TestGrants(t *testing.T) {
	c := mustCompile(t, decisionDoc+`// and a duplicate of rule 4 for everyone
`)
	tests := []struct {
		user string
		want []wire.Grant
	}{
		{"alice@example.com", []wire.Grant{
			grant("192.168.0.0/24", "22", wire.ProtoTCP, 1),
			grant("192.168.0.0/25", "20-25", wire.ProtoTCP, 6),
			grant("192.168.0.10/32", "443", wire.ProtoAny, 4),
			grant("192.168.0.10/32", "443", wire.ProtoTCP, 1),
			grant("192.168.1.0/24", "*", wire.ProtoAny, 2),
			grant("2001:db8::/64", "53", wire.ProtoAny, 4),
		}},
		{"", []wire.Grant{
			grant("192.168.0.10/32", "443", wire.ProtoAny, 4),
			grant("2001:db8::/64", "53", wire.ProtoAny, 4),
		}},
		{"carol@example.com", []wire.Grant{
			grant("192.168.0.0/24", "*", wire.ProtoICMP, 5),
			grant("192.168.0.10/32", "443", wire.ProtoAny, 4),
			grant("2001:db8::/64", "53", wire.ProtoAny, 4),
		}},
	}
	for _, tt := range tests {
		got := c.Grants(tt.user)
		if diff := cmp.Diff(tt.want, got, equateNetip); diff != "" {
			t.Errorf("Grants(%q) (-want +got):\n%s", tt.user, diff)
		}
		if len(got) > 0 {
			got[0].Rule = 99 // the caller owns the slice
			if c.Grants(tt.user)[0].Rule == 99 {
				t.Errorf("Grants(%q) returns shared state", tt.user)
			}
		}
	}
	// Two rules with the same destination: the lower one's grant is kept.
	c = mustCompile(t, rules(`{"from": ["group:ops"], "to": ["10.0.0.0/8:22"]}`, `{"from": ["*"], "to": ["10.0.0.0/8:22", "10.0.0.0/8:22"]}`))
	want := []wire.Grant{grant("10.0.0.0/8", "22", wire.ProtoTCP, 1)}
	if diff := cmp.Diff(want, c.Grants("bob@example.com"), equateNetip); diff != "" {
		t.Errorf("deduplicated Grants (-want +got):\n%s", diff)
	}
	want = []wire.Grant{grant("10.0.0.0/8", "22", wire.ProtoTCP, 2)}
	if diff := cmp.Diff(want, c.Grants(""), equateNetip); diff != "" {
		t.Errorf("deduplicated Grants (-want +got):\n%s", diff)
	}
}

func TestGrantsWithin(t *testing.T) {
	c := mustCompile(t, rules(
		`{"from": ["*"], "to": ["10.0.0.0/8:443", "10.1.2.3:22", "[2001:db8::/32]:*"]}`,
		`{"from": ["group:ops"], "to": ["0.0.0.0/0:80"]}`,
	))
	tests := []struct {
		name   string
		user   string
		served []string
		want   []wire.Grant
	}{
		{
			name:   "a wide grant is cut to the served prefix, a narrow one stays",
			served: []string{"10.1.0.0/16"},
			want:   []wire.Grant{grant("10.1.0.0/16", "443", wire.ProtoTCP, 1), grant("10.1.2.3/32", "22", wire.ProtoTCP, 1)},
		},
		{
			name:   "a served prefix wider than the grant",
			served: []string{"10.0.0.0/7"},
			want:   []wire.Grant{grant("10.0.0.0/8", "443", wire.ProtoTCP, 1), grant("10.1.2.3/32", "22", wire.ProtoTCP, 1)},
		},
		{
			name:   "several served prefixes, one per family",
			user:   "bob@example.com",
			served: []string{"192.168.0.0/24", "10.1.2.0/24", "2001:db8:1::/48"},
			want: []wire.Grant{
				grant("10.1.2.0/24", "80", wire.ProtoTCP, 2),
				grant("10.1.2.0/24", "443", wire.ProtoTCP, 1),
				grant("10.1.2.3/32", "22", wire.ProtoTCP, 1),
				grant("192.168.0.0/24", "80", wire.ProtoTCP, 2),
				grant("2001:db8:1::/48", "*", wire.ProtoTCP, 1),
			},
		},
		{
			name:   "nothing served overlaps",
			served: []string{"172.16.0.0/12"},
		},
		{
			name: "nothing served",
		},
		{
			name:   "served prefixes with host bits are masked",
			served: []string{"10.1.2.3/24"},
			want:   []wire.Grant{grant("10.1.2.0/24", "443", wire.ProtoTCP, 1), grant("10.1.2.3/32", "22", wire.ProtoTCP, 1)},
		},
		{
			name:   "nested served prefixes yield one grant",
			served: []string{"10.1.2.0/24", "10.1.2.0/24"},
			want:   []wire.Grant{grant("10.1.2.0/24", "443", wire.ProtoTCP, 1), grant("10.1.2.3/32", "22", wire.ProtoTCP, 1)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var served []netip.Prefix
			for _, s := range tt.served {
				served = append(served, netip.MustParsePrefix(s))
			}
			got := c.GrantsWithin(tt.user, served)
			if diff := cmp.Diff(tt.want, got, equateNetip); diff != "" {
				t.Errorf("GrantsWithin (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRulesAndHosts(t *testing.T) {
	text := `{
  "rules": [
    {"from": ["*"], "to": ["10.0.0.0/8:443"]},
    {"from": ["user:alice@example.com", "user:bob@example.com"], "to": ["production-server:22", "[2001:db8::/64]:*"], "proto": "udp"},
    {"from": ["*"], "to": ["production-server:80"]},
  ],
  "tests": [{"user": "alice@example.com", "allow": [
    "production-server:22"], "deny": [
    "db:443"]}],
}`
	_, _, err := Compile(mustParse(t, text), testEnv, Options{})
	if err == nil || !strings.HasPrefix(err.Error(), "line 8: test failed") {
		t.Fatalf("Compile: %v, want a failing test at line 8", err)
	}
	text = strings.Replace(text, `"production-server:22"], "deny"`, `"production-server:22/udp"], "deny"`, 1)
	c := mustCompile(t, text)
	if got, want := c.RuleText(2), "user:alice@example.com, user:bob@example.com → production-server:22/udp, [2001:db8::/64]:*/udp"; got != want {
		t.Errorf("RuleText(2) = %q, want %q", got, want)
	}
	for _, i := range []int{0, 4, -1} {
		if got := c.RuleText(i); got != "" {
			t.Errorf("RuleText(%d) = %q, want empty", i, got)
		}
	}
	got := c.Rules([]wire.Grant{{Rule: 3}, {Rule: 1}, {Rule: 3}, {Rule: 7}, {Rule: 0}})
	want := []wire.PolicyRule{{Index: 1, Text: "* → 10.0.0.0/8:443/tcp"}, {Index: 3, Text: "* → production-server:80/tcp"}}
	if diff := cmp.Diff(want, got, equateNetip); diff != "" {
		t.Errorf("Rules (-want +got):\n%s", diff)
	}
	for _, tt := range []struct {
		host string
		line int
		ok   bool
	}{{"production-server", 4, true}, {"db", 9, true}, {"v6box", 0, false}} {
		line, ok := c.NamesHost(tt.host)
		if line != tt.line || ok != tt.ok {
			t.Errorf("NamesHost(%q) = %d, %v, want %d, %v", tt.host, line, ok, tt.line, tt.ok)
		}
	}
}
