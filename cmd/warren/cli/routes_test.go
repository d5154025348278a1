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
