package policy

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/warrennet/warren/overlay/wire"
)

// sshDoc has rules and ssh rules that overlap on port 22.
const sshDoc = `{
  "groups": {"eng": ["alice@example.com", "dave@example.com"], "ops": ["bob@example.com"]},
  "rules": [
    {"from": ["group:eng"], "to": ["192.168.0.0/24:443"]},
    {"from": ["user:bob@example.com"], "to": ["192.168.0.10:22"]},
  ],
  "ssh": [
    {"from": ["group:eng"], "to": ["192.168.0.0/24", "db"], "as": ["deploy", "alice"]},
    {"from": ["group:ops", "user:carol@example.com"], "to": ["192.168.0.10", "2001:db8::/64"], "as": ["root", "deploy"]},
    {"from": ["*"], "to": ["[2001:db8::10]"], "as": ["guest"]},
  ],
}`

const (
	ssh1 = wire.SSHRuleBase + 1
	ssh2 = wire.SSHRuleBase + 2
	ssh3 = wire.SSHRuleBase + 3
)

func TestParseSSH(t *testing.T) {
	doc := mustParse(t, sshDoc)
	want := []SSHRule{
		{From: []string{"group:eng"}, To: []string{"192.168.0.0/24", "db"}, As: []string{"deploy", "alice"}},
		{From: []string{"group:ops", "user:carol@example.com"}, To: []string{"192.168.0.10", "2001:db8::/64"}, As: []string{"root", "deploy"}},
		{From: []string{"*"}, To: []string{"[2001:db8::10]"}, As: []string{"guest"}},
	}
	if diff := cmp.Diff(want, doc.SSH); diff != "" {
		t.Errorf("SSH (-want +got):\n%s", diff)
	}
	for path, want := range map[string]int{sshPath(0): 8, itemPath(sshPath(1), "as", 1): 9, sshPath(2): 10, "ssh": 7} {
		if got := doc.line(path); got != want {
			t.Errorf("line(%s) = %d, want %d", path, got, want)
		}
	}
}

func TestSSHDecide(t *testing.T) {
	c := mustCompile(t, sshDoc)
	const alice, bob, carol = "alice@example.com", "bob@example.com", "carol@example.com"
	tests := []struct {
		name   string
		user   string
		dst    string
		port   uint16
		proto  wire.Proto
		rule   int
		reason string
	}{
		{"an ssh rule grants 22", alice, "192.168.0.10", 22, wire.ProtoTCP, ssh1,
			"allowed by ssh rule 1 (line 8): group:eng → 192.168.0.0/24:22/tcp, db:22/tcp as deploy, alice"},
		{"and only tcp", alice, "192.168.0.10", 22, wire.ProtoUDP, 0, ""},
		{"and only 22", alice, "192.168.0.10", 2222, wire.ProtoTCP, 0, ""},
		{"a rule beside it", alice, "192.168.0.10", 443, wire.ProtoTCP, 1, ""},
		{"an ssh rule's host", alice, "192.168.1.20", 22, wire.ProtoTCP, ssh1, ""},
		{"a rule comes before an ssh rule", bob, "192.168.0.10", 22, wire.ProtoTCP, 2,
			"allowed by rule 2 (line 5): user:bob@example.com → 192.168.0.10:22/tcp"},
		{"outside the ssh rule's to", bob, "192.168.0.11", 22, wire.ProtoTCP, 0, ""},
		{"a user entry", carol, "192.168.0.10", 22, wire.ProtoTCP, ssh2, ""},
		{"bare ipv6 prefix", carol, "2001:db8::5", 22, wire.ProtoTCP, ssh2, ""},
		{"* in an ssh rule", "zed@example.com", "2001:db8::10", 22, wire.ProtoTCP, ssh3,
			"allowed by ssh rule 3 (line 10): * → [2001:db8::10]:22/tcp as guest"},
		{"* lets a client without a user reach 22", "", "2001:db8::10", 22, wire.ProtoTCP, ssh3, ""},
		{"the lowest ssh rule decides", carol, "2001:db8::10", 22, wire.ProtoTCP, ssh2, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := addr(tt.dst)
			d := c.Decide(tt.user, dst, tt.port, tt.proto)
			if d.Allow != (tt.rule != 0) || d.Rule != tt.rule {
				t.Fatalf("Decide = allow %v rule %d (%s), want rule %d", d.Allow, d.Rule, d.Reason, tt.rule)
			}
			if tt.reason != "" && d.Reason != tt.reason {
				t.Errorf("reason\n got: %s\nwant: %s", d.Reason, tt.reason)
			}
			if d.RuleText != c.RuleText(tt.rule) {
				t.Errorf("RuleText %q, want %q", d.RuleText, c.RuleText(tt.rule))
			}
			if got, _ := NewMatcher(c.Grants(tt.user)).Allow(dst, tt.port, tt.proto); got != tt.rule {
				t.Errorf("Matcher over Grants decides rule %d, want %d", got, tt.rule)
			}
			if got, _ := NewMatcher(c.GrantsWithin(tt.user, testRoutes)).Allow(dst, tt.port, tt.proto); got != tt.rule {
				t.Errorf("Matcher over GrantsWithin decides rule %d, want %d", got, tt.rule)
			}
		})
	}
}

func TestSSHGrantsAndRules(t *testing.T) {
	c := mustCompile(t, sshDoc)
	gs := c.Grants("alice@example.com")
	want := []wire.Grant{
		{Prefix: pfx("192.168.0.0/24"), Ports: wire.PortRange{First: 22, Last: 22}, Proto: wire.ProtoTCP, Rule: ssh1},
		{Prefix: pfx("192.168.0.0/24"), Ports: wire.PortRange{First: 443, Last: 443}, Proto: wire.ProtoTCP, Rule: 1},
		{Prefix: pfx("192.168.1.20/32"), Ports: wire.PortRange{First: 22, Last: 22}, Proto: wire.ProtoTCP, Rule: ssh1},
		{Prefix: pfx("2001:db8::10/128"), Ports: wire.PortRange{First: 22, Last: 22}, Proto: wire.ProtoTCP, Rule: ssh3},
	}
	if diff := cmp.Diff(want, gs, equateNetip); diff != "" {
		t.Errorf("Grants (-want +got):\n%s", diff)
	}
	rules := c.Rules(append(gs, wire.Grant{Rule: wire.SSHRuleBase}, wire.Grant{Rule: wire.SSHRuleBase + 4}))
	wantRules := []wire.PolicyRule{
		{Index: 1, Text: "group:eng → 192.168.0.0/24:443/tcp"},
		{Index: ssh1, Text: "group:eng → 192.168.0.0/24:22/tcp, db:22/tcp as deploy, alice"},
		{Index: ssh3, Text: "* → [2001:db8::10]:22/tcp as guest"},
	}
	if diff := cmp.Diff(wantRules, rules); diff != "" {
		t.Errorf("Rules (-want +got):\n%s", diff)
	}
	for _, i := range []int{0, 3, wire.SSHRuleBase, wire.SSHRuleBase + 4, -1} {
		if got := c.RuleText(i); got != "" {
			t.Errorf("RuleText(%d) = %q, want empty", i, got)
		}
	}
	if line, ok := c.NamesHost("db"); !ok || line != 8 {
		t.Errorf("NamesHost(db) = %d, %v; want line 8", line, ok)
	}
}

func TestSSHPrincipals(t *testing.T) {
	c := mustCompile(t, sshDoc)
	tests := []struct {
		c    *Compiled
		user string
		want []string
	}{
		{c, "alice@example.com", []string{"alice", "deploy", "guest"}},
		{c, "dave@example.com", []string{"alice", "deploy", "guest"}},
		{c, "bob@example.com", []string{"deploy", "guest", "root"}},
		{c, "carol@example.com", []string{"deploy", "guest", "root"}},
		{c, "zed@example.com", []string{"guest"}},
		{c, "", nil},
		{nil, "alice@example.com", nil},
		{mustCompile(t, rules(`{"from": ["*"], "to": ["db:22"]}`)), "alice@example.com", nil},
	}
	for _, tt := range tests {
		got := tt.c.SSHPrincipals(tt.user)
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("SSHPrincipals(%q) (-want +got):\n%s", tt.user, diff)
		}
	}
	// The caller owns the slice.
	got := c.SSHPrincipals("alice@example.com")
	got[0] = "mallory"
	if again := c.SSHPrincipals("alice@example.com"); again[0] != "alice" {
		t.Errorf("SSHPrincipals shares its slice: %v", again)
	}
}

func TestSSHTests(t *testing.T) {
	tests := []struct {
		name, tests, want string
	}{
		{"passing", `{"user": "alice@example.com", "ssh_as": ["deploy", "alice"], "ssh_deny_as": ["root"]},
{"user": "zed@example.com", "ssh_as": ["guest"], "ssh_deny_as": ["deploy"], "allow": ["[2001:db8::10]:22"]},
{"user": "carol@example.com", "ssh_as": ["root"], "allow": ["192.168.0.10:22"], "deny": ["192.168.0.11:22"]}`, ""},
		{"ssh_as fails", `{"user": "alice@example.com", "ssh_as": ["deploy",
"root"]}`, "line 14: test failed: alice@example.com should log in with ssh as root, but no ssh rule lets them"},
		{"ssh_deny_as fails", `{"user": "bob@example.com", "ssh_deny_as": ["alice",
"deploy"]}`, "line 14: test failed: bob@example.com should not log in with ssh as deploy, but ssh rule 2 (line 9) lets them: group:ops, user:carol@example.com → 192.168.0.10:22/tcp, [2001:db8::/64]:22/tcp as root, deploy"},
		{"* rules count", `{"user": "bob@example.com",
"ssh_deny_as": ["guest"]}`, "line 14: test failed: bob@example.com should not log in with ssh as guest, but ssh rule 3 (line 10) lets them: * → [2001:db8::10]:22/tcp as guest"},
		{"allow through an ssh rule fails", `{"user": "alice@example.com",
"deny": ["192.168.0.10:22"]}`, "line 14: test failed: alice@example.com → 192.168.0.10:22/tcp should be denied, but ssh rule 1 (line 8) allows it: group:eng → 192.168.0.0/24:22/tcp, db:22/tcp as deploy, alice"},
		{"unknown user", `{"user": "erin@example.com", "ssh_as": ["guest"]}`, `line 13: test: unknown user "erin@example.com": no token or node carries it and no group lists it`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := strings.TrimSuffix(sshDoc, "}") + "  \"tests\": [\n" + tt.tests + "\n],\n}"
			_, _, err := Compile(mustParse(t, text), Env{Users: append(testEnv.Users, "zed@example.com"), Hosts: testHosts, Routes: testRoutes}, Options{Strict: true})
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("Compile\n got: %s\nwant: %s", got, tt.want)
			}
		})
	}
}

func TestSSHWarnings(t *testing.T) {
	text := `{"ssh": [
  {"from": ["*"], "to": ["192.168.0.0/24", "10.9.0.0/16"], "as": ["root"]},
  {"from": ["*"], "to": ["db"], "as": ["root"]},
]}`
	_, warnings, err := Compile(mustParse(t, text), Env{Hosts: testHosts, Routes: []netip.Prefix{pfx("192.168.0.0/24")}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"line 2: 10.9.0.0/16 matches no routed prefix: the ssh rule can never apply",
		"line 3: db (192.168.1.20) matches no routed prefix: the ssh rule can never apply",
	}
	if diff := cmp.Diff(want, warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

func TestSSHOnlyDocument(t *testing.T) {
	// ssh rules alone do not deny everything: no deny-all needed.
	c, _, err := Compile(mustParse(t, `{"ssh": [{"from": ["*"], "to": ["db"], "as": ["root"]}]}`), testEnv, Options{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	if d := c.Decide("alice@example.com", addr("192.168.1.20"), 22, wire.ProtoTCP); d.Rule != ssh1 {
		t.Errorf("Decide = %+v, want ssh rule 1", d)
	}
}

func TestSSHBuiltInCode(t *testing.T) {
	doc := &Document{SSH: []SSHRule{{From: []string{"*"}, To: []string{"10.0.0.0/8", "10.0.0.0/8:22"}, As: []string{"root"}}}}
	_, _, err := Compile(doc, testEnv, Options{})
	want := `ssh[0].to[1]: destination "10.0.0.0/8:22": an ssh rule's destinations have no port (ssh is port 22): write 10.0.0.0/8`
	if err == nil || err.Error() != want {
		t.Errorf("Compile error = %v, want %q", err, want)
	}
	doc.SSH[0].To = doc.SSH[0].To[:1]
	c, _, err := Compile(doc, testEnv, Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := c.Decide("", addr("10.1.1.1"), 22, wire.ProtoTCP)
	if want := "allowed by ssh rule 1: * → 10.0.0.0/8:22/tcp as root"; d.Reason != want {
		t.Errorf("reason %q, want %q", d.Reason, want)
	}
}
