package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/overlay/wire"
)

// runStdin is run with stdin.
func runStdin(t *testing.T, admin string, stdin io.Reader, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	env := Env{Stdin: stdin, Stdout: &out, Stderr: &errb, Getenv: func(k string) string {
		if k == EnvAdminToken {
			return admin
		}
		return ""
	}}
	app := New(env, Roles{})
	err = app.RunContext(context.Background(), Permute(app, append([]string{"warren"}, args...)))
	return out.String(), errb.String(), err
}

const cliPolicy = `{
  "groups": {"eng": ["alice@example.com"]},
  "rules": [
    // ssh to the office LAN and the intranet
    {"from": ["group:eng"], "to": ["192.168.0.0/24:22", "production-server:443"]},
    {"from": ["user:bob@example.com"], "to": ["10.9.0.0/16:*"], "proto": "any"},
  ],
  "tests": [
    {"user": "alice@example.com", "allow": ["192.168.0.10:22"], "deny": ["192.168.0.10:8080"]},
  ],
}
`

// policyCoordinator is a coordinator with alice's and bob's laptops, a
// connector serving 192.168.0.0/24 and host production-server.
func policyCoordinator(t *testing.T) *testCoordinator {
	t.Helper()
	tc := newTestCoordinator(t)
	for _, args := range []string{
		"token create --role client --name alice --user alice@example.com",
		"token create --role client --name bob --user bob@example.com",
	} {
		if _, _, err := run(t, tc.admin, strings.Fields(args)...); err != nil {
			t.Fatal(err)
		}
	}
	tc.enroll(t, wire.RoleConnector, "office", 1)
	for _, args := range []string{
		"routes add 192.168.0.0/24 --connector office",
		"hosts add production-server 192.168.0.10",
	} {
		if _, _, err := run(t, tc.admin, strings.Fields(args)...); err != nil {
			t.Fatal(err)
		}
	}
	return tc
}

func writeFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPolicyGetUnderAllowAll(t *testing.T) {
	tc := newTestCoordinator(t)
	out, stderr, err := run(t, tc.admin, "policy", "get")
	if err != nil || out != "" {
		t.Errorf("policy get under allow-all: stdout %q, %v; want nothing, success", out, err)
	}
	if want := "no access policy is set: allow-all (no document set): every client reaches every routed destination; set one with: warren policy set FILE\n"; stderr != want {
		t.Errorf("stderr %q, want %q", stderr, want)
	}
	out, _, err = run(t, tc.admin, "policy", "get", "--json")
	var doc wire.PolicyDocument
	if err != nil || json.Unmarshal([]byte(out), &doc) != nil || doc.Mode != wire.PolicyAllowAll {
		t.Errorf("policy get --json = %s, %v", out, err)
	}
}

func TestPolicySetGetWhyReset(t *testing.T) {
	tc := policyCoordinator(t)
	path := writeFile(t, cliPolicy)

	// A dry run says what would change and changes nothing.
	before := tc.co.Export()
	out, stderr, err := run(t, tc.admin, "policy", "set", path, "--dry-run")
	if err != nil {
		t.Fatal(err)
	}
	want := `dry run, nothing changed: the policy would be enforced
alice@example.com
  + 192.168.0.0/24:22/tcp
  + 192.168.0.10:443/tcp
  - * (every routed destination)
bob@example.com
  + 10.9.0.0/16:*/any
  - * (every routed destination)
`
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("policy set --dry-run (-want +got):\n%s", diff)
	}
	if want := "warning: line 6: 10.9.0.0/16:* matches no routed prefix: the rule can never apply\n"; stderr != want {
		t.Errorf("dry run stderr %q, want %q", stderr, want)
	}
	if diff := cmp.Diff(before, tc.co.Export(), netipEqual); diff != "" {
		t.Errorf("a dry run changed state (-before +after):\n%s", diff)
	}

	// Set from stdin.
	out, _, err = runStdin(t, tc.admin, strings.NewReader(cliPolicy), "policy", "set", "-")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "access policy set: enforced\nalice@example.com\n") {
		t.Errorf("policy set - printed:\n%s", out)
	}

	// Get prints it as set, comments and all.
	out, stderr, err = run(t, tc.admin, "policy", "get")
	if err != nil || out != cliPolicy {
		t.Errorf("policy get = %q, %v; want the document as set", out, err)
	}
	if want := "enforced: 2 rules; only what a rule allows passes\n"; stderr != want {
		t.Errorf("policy get stderr %q, want %q", stderr, want)
	}
	out, _, err = run(t, tc.admin, "nodes", "ls")
	if err != nil || !strings.HasPrefix(out, "access policy: enforced: 2 rules; only what a rule allows passes; set 2026-11-23 ") {
		t.Errorf("nodes ls under a policy:\n%s (%v)", out, err)
	}

	// Setting the same document again changes nothing for anyone.
	out, _, err = run(t, tc.admin, "policy", "set", path)
	if err != nil || out != "access policy set: enforced\nno user gains or loses access\n" {
		t.Errorf("policy set again: %q, %v", out, err)
	}

	// Why: exit 0 allow, 1 deny, 2 bad question.
	for _, tt := range []struct {
		args   string
		status int
		out    string
		err    string
	}{
		{"policy why alice@example.com 192.168.0.10:22", 0, "allow: allowed by rule 1 (line 5): group:eng → 192.168.0.0/24:22/tcp, production-server:443/tcp\n", ""},
		{"policy why alice@example.com production-server:443/tcp", 0, "allow: allowed by rule 1 (line 5): group:eng → 192.168.0.0/24:22/tcp, production-server:443/tcp\n", ""},
		{"policy why alice@example.com 192.168.0.10:8080", 1, "deny: denied by policy: no rule lets alice@example.com reach 192.168.0.10:8080/tcp\n", ""},
		{"policy why bob@example.com 192.168.0.10:22/udp", 1, "deny: denied by policy: no rule lets bob@example.com reach 192.168.0.10:22/udp\n", ""},
		{"policy why alice 192.168.0.10:22", 2, "", `user "alice" is not an e-mail address (name@domain)`},
		{"policy why carol@example.com 192.168.0.10:22", 2, "", `unknown user "carol@example.com": no token or node carries it and no group of the policy lists it`},
		{"policy why alice@example.com nowhere:22", 2, "", `host "nowhere" is not declared (warren hosts add nowhere IP)`},
		{"policy why alice@example.com", 2, "", "usage: warren policy why USER IP:PORT[/PROTO] [--json]"},
	} {
		out, _, err := run(t, tc.admin, strings.Fields(tt.args)...)
		if got := ExitStatus(err); got != tt.status {
			t.Errorf("%s: exit status %d (%v), want %d", tt.args, got, err, tt.status)
		}
		if out != tt.out {
			t.Errorf("%s: stdout %q, want %q", tt.args, out, tt.out)
		}
		switch {
		case tt.err == "" && err != nil && err.Error() != "":
			t.Errorf("%s: error %q, want none shown", tt.args, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%s: error %v, want %s", tt.args, err, tt.err)
		}
	}
	out, _, err = run(t, tc.admin, "policy", "why", "alice@example.com", "192.168.0.10:8080", "--json")
	var d wire.PolicyDecision
	if ExitStatus(err) != 1 || json.Unmarshal([]byte(out), &d) != nil || d.Allow || d.Dest.String() != "192.168.0.10:8080" {
		t.Errorf("policy why --json = %s, %v", out, err)
	}

	// A host the policy names cannot go.
	_, _, err = run(t, tc.admin, "hosts", "rm", "production-server")
	if want := `the access policy names host "production-server" (line 5); change the policy first (warren policy get, warren policy set FILE)`; err == nil || err.Error() != want {
		t.Errorf("hosts rm production-server: %v, want %s", err, want)
	}

	// Reset: back to allow-all.
	out, _, err = run(t, tc.admin, "policy", "reset")
	if err != nil || !strings.HasPrefix(out, "access policy removed: allow-all, every client reaches every routed destination\nalice@example.com\n  + * (every routed destination)\n") {
		t.Errorf("policy reset: %q, %v", out, err)
	}
	if tc.co.Policy().Mode != wire.PolicyAllowAll {
		t.Errorf("mode after reset: %s", tc.co.Policy().Mode)
	}
	if out, _, err = run(t, tc.admin, "policy", "why", "alice@example.com", "192.168.0.10:8080"); err != nil || !strings.HasPrefix(out, "allow: ") {
		t.Errorf("policy why after reset: %q, %v", out, err)
	}
}

func TestPolicySetRefusals(t *testing.T) {
	tc := policyCoordinator(t)
	failing := strings.Replace(cliPolicy, `"deny": ["192.168.0.10:8080"]`, `"deny": ["192.168.0.10:22"]`, 1)
	unknownGroup := strings.Replace(cliPolicy, `"group:eng"`, `"group:ops"`, 1)
	unknownHost := strings.Replace(cliPolicy, `"production-server:443"`, `"wiki:443"`, 1)
	before := tc.co.Export()
	for _, tt := range []struct {
		name, text string
		flags      []string
		want       string
	}{
		{"failing test", failing, nil, "policy.json: line 9: test failed: alice@example.com → 192.168.0.10:22/tcp should be denied, but rule 1 (line 5) allows it: group:eng → 192.168.0.0/24:22/tcp, production-server:443/tcp; nothing changed"},
		{"unknown group", unknownGroup, nil, "policy.json: line 5: "},
		{"unknown host", unknownHost, nil, `policy.json: line 5: destination "wiki:443": host "wiki" is not declared (warren hosts add wiki IP); nothing changed`},
		{"syntax", "{\n  \"rules\": [,]\n}\n", nil, "policy.json: line 2: "},
		{"no rules", `{"rules": []}`, nil, "policy.json: line 1: the document has no rules, so it denies everything"},
		{"no rules, dry run", `{"rules": []}`, []string{"--dry-run"}, "policy.json: line 1: the document has no rules"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.text)
			out, _, err := run(t, tc.admin, append([]string{"policy", "set", path}, tt.flags...)...)
			if err == nil {
				t.Fatalf("succeeded, printing %q", out)
			}
			got, named := strings.CutPrefix(err.Error(), filepath.Dir(path)+string(filepath.Separator))
			if !named || !strings.HasPrefix(got, tt.want) || strings.Contains(got, "\n") {
				t.Errorf("error:\n got %s\nwant %s…, one line", err, tt.want)
			}
			if ExitStatus(err) != 1 {
				t.Errorf("exit status %d, want 1", ExitStatus(err))
			}
			if diff := cmp.Diff(before, tc.co.Export(), netipEqual); diff != "" {
				t.Errorf("a refused document changed state (-before +after):\n%s", diff)
			}
		})
	}

	// A refused document leaves the one in force alone.
	if _, _, err := run(t, tc.admin, "policy", "set", writeFile(t, cliPolicy)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(t, tc.admin, "policy", "set", writeFile(t, failing)); err == nil {
		t.Fatal("a failing test was accepted")
	}
	if got := tc.co.Policy().Document; got != cliPolicy {
		t.Errorf("document after a refusal = %q, want the one set before", got)
	}

	// --deny-all accepts an empty rule list.
	out, _, err := run(t, tc.admin, "policy", "set", writeFile(t, `{"rules": []}`), "--deny-all")
	if err != nil || !strings.HasPrefix(out, "access policy set: enforced\n") {
		t.Errorf("policy set --deny-all: %q, %v", out, err)
	}
	if out, _, err := run(t, tc.admin, "policy", "why", "alice@example.com", "192.168.0.10:22"); ExitStatus(err) != 1 || !strings.HasPrefix(out, "deny: ") {
		t.Errorf("policy why under deny-all: %q, %v", out, err)
	}

	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"policy", "set"}, "usage: warren policy set FILE|- [--dry-run] [--deny-all]"},
		{[]string{"policy", "set", filepath.Join(t.TempDir(), "none.json")}, "reading policy: open "},
		{[]string{"policy", "set", "-"}, "no standard input to read the policy from"},
	} {
		if _, _, err := run(t, tc.admin, tt.args...); err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%v: error %v, want %s…", tt.args, err, tt.want)
		}
	}
}

func TestPolicySetSSHDryRun(t *testing.T) {
	tc := policyCoordinator(t)
	path := writeFile(t, `{
  "rules": [{"from": ["user:bob@example.com"], "to": ["192.168.0.0/24:443"]}],
  "ssh": [{"from": ["user:alice@example.com"], "to": ["production-server"], "as": ["deploy", "alice"]}],
  "tests": [{"user": "alice@example.com", "ssh_as": ["deploy"], "ssh_deny_as": ["root"]}],
}`)
	out, _, err := run(t, tc.admin, "policy", "set", path, "--dry-run")
	if err != nil {
		t.Fatal(err)
	}
	want := `dry run, nothing changed: the policy would be enforced
alice@example.com
  + 192.168.0.10:22/tcp
  - * (every routed destination)
  + ssh as alice
  + ssh as deploy
bob@example.com
  + 192.168.0.0/24:443/tcp
  - * (every routed destination)
`
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("policy set --dry-run (-want +got):\n%s", diff)
	}
	path = writeFile(t, `{
  "ssh": [{"from": ["user:alice@example.com"], "to": ["production-server"], "as": ["deploy"]}],
  "tests": [{"user": "alice@example.com",
    "ssh_as": ["root"]}],
}`)
	_, _, err = run(t, tc.admin, "policy", "set", path)
	if want := path + ": line 4: test failed: alice@example.com should log in with ssh as root, but no ssh rule lets them; nothing changed"; err == nil || err.Error() != want {
		t.Errorf("policy set with a failing ssh_as test: %v; want %q", err, want)
	}
}
