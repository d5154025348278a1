package policy

import (
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/warrennet/warren/overlay/wire"
)

// FuzzParse: Parse never panics; it refuses with a one-line *Error or
// returns a document that survives JSON and Parse again unchanged, and
// that Compile handles without panicking.
func FuzzParse(f *testing.F) {
	f.Add(example)
	f.Add(decisionDoc)
	f.Add(`{"rules": [{"from": ["*"], "to": ["[2001:db8::/64]:*", "10.0.0.0/8:8000-8999"], "proto": "udp"}]}`)
	f.Add(`{"rules": [{"from": ["*"], "to": ["10.0.0.1/8:22"]}]}`)
	f.Add(`{"groups": {"eng": ["a@b"]}, "tests": [{"user": "a@b", "deny": ["h/icmp", "[::1]:22/udp"]}]}`)
	f.Add(`{"rules": [/* c */ {"from": ["group:x"],}],}`)
	f.Add("{\"rules\": [\n}")
	f.Add(`[]`)
	f.Add(sshDoc)
	f.Add(`{"ssh": [{"from": ["group:sso", "*"], "to": ["10.0.0.0/8", "h", "2001:db8::/64", "[2001:db8::1]"], "as": ["root", "_svc"]}],
  "tests": [{"user": "a@b", "ssh_as": ["root"], "ssh_deny_as": ["deploy"]}]}`)
	f.Add(`{"ssh": [{"from": ["user:a@b"], "to": ["h:22"], "as": ["root", "root"]}], "tests": [{"user": "a@b", "ssh_deny_as": ["-x"]}]}`)
	f.Add(`{"rules": [{"from": ["group:nobody"], "to": ["h:*"]}], "ssh": [{"from": ["group:sso"], "to": ["[::1]:22"], "as": []}]}`)
	f.Fuzz(func(t *testing.T, text string) {
		doc, err := Parse([]byte(text))
		if err != nil {
			checkError(t, err)
			return
		}
		b, err := json.Marshal(doc)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		again, err := Parse(b)
		if err != nil {
			t.Fatalf("Parse accepts %q but not its own output %s: %v", text, b, err)
		}
		if diff := cmp.Diff(doc, again, cmpopts.IgnoreUnexported(Document{}), cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip of %q (-first +second):\n%s", text, diff)
		}
		env := Env{
			Hosts:  map[string]netip.Addr{"h": netip.MustParseAddr("10.0.0.1")},
			Routes: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
			Groups: map[string][]string{"sso": {"a@b"}},
			SSO:    len(text)%2 == 0,
		}
		c, warnings, err := Compile(doc, env, Options{DenyAll: true, Strict: true})
		if err != nil {
			checkError(t, err)
			return
		}
		for _, w := range warnings {
			if !strings.HasPrefix(w, "line ") || strings.ContainsAny(w, "\r\n") {
				t.Errorf("warning %q is not one located line", w)
			}
		}
		for i := range doc.Rules {
			if text := c.RuleText(i + 1); text == "" || strings.ContainsAny(text, "\r\n") {
				t.Errorf("RuleText(%d) = %q", i+1, text)
			}
		}
		for i := range doc.SSH {
			if text := c.RuleText(wire.SSHRuleBase + i + 1); text == "" || strings.ContainsAny(text, "\r\n") {
				t.Errorf("RuleText(ssh %d) = %q", i+1, text)
			}
		}
		// Principals are valid, sorted and unique, and each is some ssh
		// rule's.
		for _, u := range []string{"a@b", "z@y"} {
			ps := c.SSHPrincipals(u)
			for i, p := range ps {
				if wire.ValidatePrincipal(p) != nil || i > 0 && ps[i-1] >= p {
					t.Fatalf("SSHPrincipals(%q) = %q: not valid, sorted and unique", u, ps)
				}
				found := false
				for _, r := range doc.SSH {
					found = found || slices.Contains(r.As, p)
				}
				if !found {
					t.Fatalf("SSHPrincipals(%q) holds %q, which no ssh rule names", u, p)
				}
			}
		}
		if c.SSHPrincipals("") != nil {
			t.Errorf("a client without a user has principals")
		}
	})
}

func checkError(t *testing.T, err error) {
	t.Helper()
	var perr *Error
	if !errors.As(err, &perr) {
		t.Fatalf("error %T %v is not an *Error", err, err)
	}
	if perr.Msg == "" || strings.ContainsAny(err.Error(), "\r\n") {
		t.Fatalf("error %q is not one line", err)
	}
}
