package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/overlay/wire"
)

func TestHostsCommands(t *testing.T) {
	tc := newTestCoordinator(t)
	out, _, err := run(t, tc.admin, "hosts", "ls")
	if err != nil || out != "no hosts; name one with: warren hosts add NAME IP\n" {
		t.Errorf("hosts ls, none: %q, %v", out, err)
	}
	for _, tt := range []struct{ args, want string }{
		{"hosts add production-server 192.168.0.10 --comment db-primary", "host production-server → 192.168.0.10\n"},
		{"hosts add wiki 2001:db8::80", "host wiki → 2001:db8::80\n"},
	} {
		out, _, err := run(t, tc.admin, strings.Fields(tt.args)...)
		if err != nil || out != tt.want {
			t.Errorf("%s: %q, %v; want %q", tt.args, out, err, tt.want)
		}
	}
	out, _, err = run(t, tc.admin, "hosts", "ls")
	if err != nil {
		t.Fatal(err)
	}
	want := "NAME               ADDRESS       COMMENT\n" +
		"production-server  192.168.0.10  db-primary\n" +
		"wiki               2001:db8::80  \n"
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("hosts ls (-want +got):\n%s", diff)
	}
	out, _, err = run(t, tc.admin, "hosts", "ls", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var hosts []wire.Host
	if err := json.Unmarshal([]byte(out), &hosts); err != nil || len(hosts) != 2 || hosts[0].Name != "production-server" || hosts[0].Comment != "db-primary" {
		t.Errorf("hosts ls --json = %s (%v)", out, err)
	}

	before := tc.co.Export()
	for _, tt := range []struct{ args, want string }{
		{"hosts add", "usage: warren hosts add NAME IP [--comment TEXT]"},
		{"hosts add web", "usage: warren hosts add NAME IP [--comment TEXT]"},
		{"hosts add Web 10.0.0.1", `host name "Web" may hold only lowercase letters, digits and inner hyphens`},
		{"hosts add web 10.0.0.0/24", `"10.0.0.0/24" is not an IP address (for example 192.168.0.10)`},
		{"hosts add wiki 10.0.0.1", `a host named "wiki" already exists (2001:db8::80); remove it first with: warren hosts rm wiki`},
		{"hosts rm ghost", `no host named "ghost" (see: warren hosts ls)`},
		{"hosts rm", "usage: warren hosts rm NAME"},
	} {
		_, _, err := run(t, tc.admin, strings.Fields(tt.args)...)
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s: error %v, want %s", tt.args, err, tt.want)
		}
		if ExitStatus(err) != 1 {
			t.Errorf("%s: exit status %d, want 1", tt.args, ExitStatus(err))
		}
	}
	if diff := cmp.Diff(before, tc.co.Export(), netipEqual); diff != "" {
		t.Errorf("refused commands changed state (-before +after):\n%s", diff)
	}

	out, _, err = run(t, tc.admin, "hosts", "rm", "wiki")
	if err != nil || out != "host wiki removed\n" {
		t.Errorf("hosts rm wiki: %q, %v", out, err)
	}
	if hs := tc.co.Hosts(); len(hs) != 1 || hs[0].Name != "production-server" {
		t.Errorf("hosts after rm: %+v", hs)
	}
}

func TestTokenUserAndNodesUserColumn(t *testing.T) {
	tc := newTestCoordinator(t)
	out, stderr, err := run(t, tc.admin, "token", "create", "--role", "client", "--name", "alice-laptop", "--user", "alice@example.com", "--reusable")
	if err != nil {
		t.Fatal(err)
	}
	if want := `client "alice-laptop" for alice@example.com, reusable, never expires`; !strings.Contains(stderr, want) {
		t.Errorf("token create stderr %q lacks %q", stderr, want)
	}
	tok, err := wire.ParseToken(strings.TrimSpace(out))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ args, want string }{
		{"token create --role connector --name office --user alice@example.com", "only client tokens belong to a user; connectors have none"},
		{"token create --role client --name bob --user bob", `user "bob" is not an e-mail address (name@domain)`},
	} {
		if _, _, err := run(t, tc.admin, strings.Fields(tt.args)...); err == nil || err.Error() != tt.want {
			t.Errorf("%s: error %v, want %s", tt.args, err, tt.want)
		}
	}
	out, _, err = run(t, tc.admin, "token", "ls")
	if err != nil || !strings.Contains(out, "USER") || !strings.Contains(out, "alice@example.com") {
		t.Errorf("token ls lacks the user:\n%s", out)
	}

	var k wire.Key
	k[0] = 9
	if _, err := tc.Coord.Enroll(t.Context(), tok.Secret, wire.EnrollRequest{PublicKey: k}); err != nil {
		t.Fatal(err)
	}
	tc.enroll(t, wire.RoleConnector, "office", 1)
	out, _, err = run(t, tc.admin, "nodes", "ls")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out, "\n")
	if want := "access policy: allow-all (no document set): every client reaches every routed destination"; lines[0] != want {
		t.Errorf("nodes ls first line %q, want %q", lines[0], want)
	}
	if len(lines) < 4 || !strings.HasPrefix(lines[1], "NAME") || !strings.Contains(lines[1], "USER") {
		t.Fatalf("nodes ls:\n%s", out)
	}
	fields := map[string][]string{}
	for _, l := range lines[2:] {
		if f := strings.Fields(l); len(f) > 0 {
			fields[f[0]] = f
		}
	}
	if f := fields["alice-laptop-1"]; len(f) < 3 || f[2] != "alice@example.com" {
		t.Errorf("alice's row %q lacks her user", f)
	}
	if f := fields["office"]; len(f) < 3 || f[2] != "-" {
		t.Errorf("office's row %q, want - for no user", f)
	}
	out, _, err = run(t, tc.admin, "nodes", "ls", "--json")
	if err != nil || !strings.Contains(out, `"user": "alice@example.com"`) {
		t.Errorf("nodes ls --json lacks the user: %s %v", out, err)
	}
}

func TestRoutesProxyProtocol(t *testing.T) {
	tc := newTestCoordinator(t)
	tc.enroll(t, wire.RoleConnector, "office", 1)
	out, _, err := run(t, tc.admin, "routes", "add", "192.168.0.0/24", "--connector", "office", "--proxy-protocol")
	if err != nil || out != "route 192.168.0.0/24 → connector office, PROXY v2 on TCP flows\n" {
		t.Errorf("routes add --proxy-protocol: %q, %v", out, err)
	}
	if _, _, err := run(t, tc.admin, "routes", "add", "192.168.1.0/24", "--connector", "office", "--comment", "printers"); err != nil {
		t.Fatal(err)
	}
	out, _, err = run(t, tc.admin, "routes", "ls")
	if err != nil {
		t.Fatal(err)
	}
	want := "PREFIX          CONNECTOR  PROXY  CONNECTOR-HOST  COMMENT\n" +
		"192.168.0.0/24  office     v2     -               \n" +
		"192.168.1.0/24  office     -      -               printers\n"
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("routes ls (-want +got):\n%s", diff)
	}
	if rs := tc.co.Routes(); !rs[0].ProxyProtocol || rs[1].ProxyProtocol {
		t.Errorf("routes = %+v", rs)
	}
}
