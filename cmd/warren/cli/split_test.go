package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/overlay/wire"
)

func TestSplitCommands(t *testing.T) {
	tc := newTestCoordinator(t)
	tc.enroll(t, wire.RoleConnector, "office", 1)
	for _, args := range []string{
		"routes add 192.168.0.0/24 --connector office",
		"routes add 192.168.1.0/24 --connector office",
	} {
		if _, _, err := run(t, tc.admin, strings.Fields(args)...); err != nil {
			t.Fatal(err)
		}
	}

	// Defaults: both LANs tunnelled with no split edits, though the
	// default exclude list holds 192.168.0.0/16.
	out, _, err := run(t, tc.admin, "split", "show", "--effective")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "192.168.0.0/23") || !strings.Contains(out, "office") {
		t.Errorf("default effective policy does not tunnel both LANs:\n%s", out)
	}

	// An admin exclude shadows part of a route, and says so.
	out, stderr, err := run(t, tc.admin, "split", "add", "192.168.0.128/25", "--comment", "printers")
	if err != nil {
		t.Fatal(err)
	}
	if out != "192.168.0.128/25 added to the exclude list\n" {
		t.Errorf("split add printed %q", out)
	}
	if !strings.Contains(stderr, "warning: ") || !strings.Contains(stderr, "192.168.0.128/25") {
		t.Errorf("no shadowing warning on stderr: %q", stderr)
	}
	st := tc.co.SplitPolicy()
	if st.Mode != wire.SplitExclude || !containsEntry(st.Exclude, "192.168.0.128/25") {
		t.Errorf("policy after add: %+v", st)
	}

	// A route added under an admin exclude says it is shadowed.
	_, stderr, err = run(t, tc.admin, "routes", "add", "192.168.0.128/26", "--connector", "office")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr, "warning: exclude 192.168.0.128/25 (printers) shadows route 192.168.0.128/26 via office") {
		t.Errorf("routes add under an exclude printed no warning: %q", stderr)
	}
	if _, _, err := run(t, tc.admin, "routes", "rm", "192.168.0.128/26"); err != nil {
		t.Fatal(err)
	}

	// Switching modes keeps both lists.
	if _, _, err := run(t, tc.admin, "split", "mode", "include"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := run(t, tc.admin, "split", "add", "192.168.1.0/24"); err != nil {
		t.Fatal(err)
	}
	st = tc.co.SplitPolicy()
	if st.Mode != wire.SplitInclude || !containsEntry(st.Include, "192.168.1.0/24") || !containsEntry(st.Exclude, "192.168.0.128/25") {
		t.Errorf("policy after mode include: %+v", st)
	}
	eff := tc.co.EffectiveSplit()
	if len(eff.Tunnel) != 1 || eff.Tunnel[0].Prefix.String() != "192.168.1.0/24" {
		t.Errorf("include mode tunnels %+v, want only 192.168.1.0/24", eff.Tunnel)
	}

	// Golden JSON.
	for _, g := range []struct{ golden, args string }{
		{"split-ls.json", "split ls --json"},
		{"split-effective.json", "split show --effective --json"},
	} {
		out, _, err := run(t, tc.admin, strings.Fields(g.args)...)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("testdata", g.golden)
		if *update {
			os.WriteFile(path, []byte(out), 0o644)
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update to create it)", err)
		}
		if diff := cmp.Diff(string(want), out); diff != "" {
			t.Errorf("%s (-golden +got):\n%s", g.args, diff)
		}
	}

	// Reset goes back to the defaults.
	if _, _, err := run(t, tc.admin, "split", "reset"); err != nil {
		t.Fatal(err)
	}
	if st := tc.co.SplitPolicy(); st.Mode != wire.SplitExclude || len(st.Include) != 0 || containsEntry(st.Exclude, "192.168.0.128/25") {
		t.Errorf("policy after reset: %+v", st)
	}
}

func TestSplitRejects(t *testing.T) {
	tc := newTestCoordinator(t)
	before := tc.co.Export()
	tests := []struct{ args, want string }{
		{"split mode everything", `split mode "everything" is not one of: include, exclude`},
		{"split add foo", `"foo" is not a valid CIDR prefix (for example 192.168.0.0/24)`},
		{"split add 10.1.2.3/8", `10.1.2.3/8 has host bits set; did you mean 10.0.0.0/8?`},
		{"split add 10.0.0.0/8", `10.0.0.0/8 is already in the exclude list (a default entry)`},
		{"split rm 10.9.0.0/16", `10.9.0.0/16 is not in the exclude list (see: warren split ls)`},
		{"split show", `usage: warren split show --effective [--json] (for the lists: warren split ls)`},
		{"split add", `usage: warren split add CIDR [--comment TEXT]`},
	}
	for _, tt := range tests {
		_, _, err := run(t, tc.admin, strings.Fields(tt.args)...)
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s: error %v\nwant %s", tt.args, err, tt.want)
		}
	}
	if diff := cmp.Diff(before, tc.co.Export(), netipEqual); diff != "" {
		t.Errorf("refused split edits changed state:\n%s", diff)
	}
}

func containsEntry(es []wire.SplitEntry, prefix string) bool {
	for _, e := range es {
		if e.Prefix.String() == prefix {
			return true
		}
	}
	return false
}
