package cli

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/overlay/wire"
)

func TestRoutesAllowConnectorHost(t *testing.T) {
	tc := newTestCoordinator(t)
	tc.enroll(t, wire.RoleConnector, "office", 1)
	out, _, err := run(t, tc.admin, "routes", "add", "192.168.0.5/32", "--connector", "office", "--allow-connector-host")
	if err != nil || out != "route 192.168.0.5/32 → connector office, the connector host's own addresses reachable\n" {
		t.Errorf("routes add --allow-connector-host: %q, %v", out, err)
	}
	if _, _, err := run(t, tc.admin, "routes", "add", "192.168.0.0/24", "--connector", "office"); err != nil {
		t.Fatal(err)
	}
	out, _, err = run(t, tc.admin, "routes", "ls")
	if err != nil {
		t.Fatal(err)
	}
	want := "PREFIX          CONNECTOR  PROXY  CONNECTOR-HOST  COMMENT\n" +
		"192.168.0.0/24  office     -      -               \n" +
		"192.168.0.5/32  office     -      allowed         \n"
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("routes ls (-want +got):\n%s", diff)
	}
	out, _, err = run(t, tc.admin, "routes", "ls", "--json")
	if err != nil || strings.Count(out, `"allow_connector_host": true`) != 1 {
		t.Errorf("routes ls --json: want the flag on one route:\n%s %v", out, err)
	}
	if rs := tc.co.Routes(); rs[0].AllowConnectorHost || !rs[1].AllowConnectorHost {
		t.Errorf("routes = %+v", rs)
	}
	// Loopback stays refused, flag or not.
	_, _, err = run(t, tc.admin, "routes", "add", "127.0.0.1/32", "--connector", "office", "--allow-connector-host")
	if want := "127.0.0.1/32 overlaps loopback (127.0.0.0/8) and cannot be routed"; err == nil || err.Error() != want {
		t.Errorf("routes add 127.0.0.1/32 --allow-connector-host: %v, want %s", err, want)
	}
}

func TestRoutesAddForce(t *testing.T) {
	tc := newTestCoordinator(t)
	tc.enroll(t, wire.RoleConnector, "office", 1)
	tc.enroll(t, wire.RoleConnector, "lab", 2)
	if _, _, err := run(t, tc.admin, "routes", "add", "192.168.0.0/24", "--connector", "office"); err != nil {
		t.Fatal(err)
	}
	// Without --force: refused with one line naming the route and
	// connector it would take from.
	out, stderr, err := run(t, tc.admin, "routes", "add", "192.168.0.128/25", "--connector", "lab")
	want := `192.168.0.128/25 would take traffic from route 192.168.0.0/24 (connector "office") to connector "lab"; add --force to move it`
	if err == nil || err.Error() != want || out != "" || stderr != "" {
		t.Errorf("routes add without --force: %q, %q, %v; want the error %s", out, stderr, err, want)
	}
	if n := len(tc.co.Routes()); n != 1 {
		t.Errorf("%d routes after a refused add, want 1", n)
	}
	// Same connector: no force needed, no warning.
	out, stderr, err = run(t, tc.admin, "routes", "add", "192.168.0.64/26", "--connector", "office")
	if err != nil || out != "route 192.168.0.64/26 → connector office\n" || stderr != "" {
		t.Errorf("routes add inside the same connector's route: %q, %q, %v", out, stderr, err)
	}
	// With --force: added, and the warning names what it took.
	out, stderr, err = run(t, tc.admin, "routes", "add", "192.168.0.128/25", "--connector", "lab", "--force")
	if err != nil || out != "route 192.168.0.128/25 → connector lab\n" {
		t.Errorf("routes add --force: %q, %v", out, err)
	}
	if want := "warning: 192.168.0.128/25 takes traffic from route 192.168.0.0/24 (connector \"office\"): it now goes to connector \"lab\"\n"; stderr != want {
		t.Errorf("routes add --force: stderr %q, want %q", stderr, want)
	}
	// --force where nothing is taken warns nothing.
	_, stderr, err = run(t, tc.admin, "routes", "add", "10.0.0.0/8", "--connector", "lab", "--force")
	if err != nil || stderr != "" {
		t.Errorf("routes add --force of a new range: %q, %v", stderr, err)
	}
}

// TestRoutesAddGuard: the embedded IPv4 forms are refused by the CLI with
// the coordinator's one line.
func TestRoutesAddGuard(t *testing.T) {
	tc := newTestCoordinator(t)
	tc.enroll(t, wire.RoleConnector, "office", 1)
	for _, tt := range []struct{ prefix, want string }{
		{"64:ff9b::7f00:1/128", "64:ff9b::7f00:1/128 overlaps the NAT64 form of loopback (127.0.0.0/8) and cannot be routed"},
		{"64:ff9b::/96", "64:ff9b::/96 overlaps the NAT64 form of this network (0.0.0.0/8) and cannot be routed"},
		{"2002:a9fe:a9fe::/48", "2002:a9fe:a9fe::/48 overlaps the 6to4 form of link-local (169.254.0.0/16) and cannot be routed"},
		{"::7f00:1/128", "::7f00:1/128 overlaps IPv4-compatible (::/96) and cannot be routed"},
		{"255.255.255.255/32", "255.255.255.255/32 overlaps limited broadcast (255.255.255.255/32) and cannot be routed"},
	} {
		_, _, err := run(t, tc.admin, "routes", "add", tt.prefix, "--connector", "office")
		if err == nil || err.Error() != tt.want {
			t.Errorf("routes add %s: %v, want %s", tt.prefix, err, tt.want)
		}
	}
	if _, _, err := run(t, tc.admin, "routes", "add", "64:ff9b::c0a8:0/120", "--connector", "office"); err != nil {
		t.Errorf("routes add of the NAT64 form of a LAN: %v", err)
	}
}
