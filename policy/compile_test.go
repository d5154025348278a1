package policy

import (
	"net/netip"
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
