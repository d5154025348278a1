package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/overlay/wire"
)

// flowClock is the test coordinator's fixed now (see newTestCoordinator).
var flowClock = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// withFlows starts a test coordinator whose connector office has reported
// four flows.
func withFlows(t *testing.T) *testCoordinator {
	t.Helper()
	tc := newTestCoordinator(t)
	office := tc.Enroll(t, wire.RoleConnector, "office", wire.Key{1, 31: 0x42})
	tc.enroll(t, wire.RoleClient, "laptop", 2)
	at := func(ago time.Duration) time.Time { return flowClock.Add(-ago) }
	recs := []wire.FlowRecord{
		{
			ID: "ssh", User: "alice@example.com", Node: "laptop",
			Src: netip.MustParseAddrPort("100.96.0.2:50022"), Dst: netip.MustParseAddrPort("192.168.0.10:22"),
			Proto: wire.ProtoTCP, Decision: wire.DecisionAllow, Rule: 1, Reason: "allowed by rule 1 (line 5): group:eng → 192.168.0.0/24:22/tcp",
			Start: at(3 * time.Hour), End: at(3*time.Hour - 62*time.Minute - 5*time.Second), BytesUp: 5 << 10, BytesDown: 3<<20 + 1<<19,
		},
		{
			ID: "web", User: "alice@example.com", Node: "laptop",
			Src: netip.MustParseAddrPort("100.96.0.2:50080"), Dst: netip.MustParseAddrPort("192.168.0.10:8080"),
			Proto: wire.ProtoTCP, Decision: wire.DecisionDeny, Reason: "denied by policy: no rule lets alice@example.com reach 192.168.0.10:8080/tcp",
			Start: at(2 * time.Hour), End: at(2 * time.Hour),
		},
		{
			ID: "dns", Node: "laptop",
			Src: netip.MustParseAddrPort("100.96.0.2:40053"), Dst: netip.MustParseAddrPort("10.0.0.53:53"),
			Proto: wire.ProtoUDP, Decision: wire.DecisionAllow, Reason: "allowed: no policy is set",
			Start: at(30 * time.Minute), End: at(30*time.Minute - 350*time.Millisecond), BytesUp: 40, BytesDown: 512,
		},
		{
			ID: "ping", User: "bob@example.com", Node: "laptop",
			Src: netip.MustParseAddrPort("100.96.0.2:0"), Dst: netip.MustParseAddrPort("192.168.0.1:0"),
			Proto: wire.ProtoICMP, Decision: wire.DecisionDeny, Reason: "denied by policy: no rule lets bob@example.com reach 192.168.0.1/icmp",
			Start: at(10 * time.Minute), End: at(10*time.Minute - 4200*time.Millisecond), BytesUp: 84,
		},
	}
	if err := tc.co.ReportFlows(context.Background(), office.Node, recs); err != nil {
		t.Fatal(err)
	}
	return tc
}

// columns splits a table row into its cells (tabwriter pads with at least
// two spaces; a cell holds at most one).
func columns(line string) []string {
	return regexp.MustCompile(`\s{2,}`).Split(strings.TrimSpace(line), -1)
}

func TestFlowsTable(t *testing.T) {
	tc := withFlows(t)
	out, _, err := run(t, tc.admin, "flows")
	if err != nil {
		t.Fatal(err)
	}
	local := func(ago time.Duration) string { return flowClock.Add(-ago).Local().Format("2006-01-02 15:04:05") }
	want := [][]string{
		{"START", "USER", "NODE", "CONNECTOR", "SRC", "DST", "PROTO", "DECISION", "RULE", "UP", "DOWN", "DURATION"},
		{local(10 * time.Minute), "bob@example.com", "laptop", "office", "100.96.0.2", "192.168.0.1", "icmp", "deny", "-", "84B", "0B", "4.2s"},
		{local(30 * time.Minute), "-", "laptop", "office", "100.96.0.2:40053", "10.0.0.53:53", "udp", "allow", "-", "40B", "512B", "350ms"},
		{local(2 * time.Hour), "alice@example.com", "laptop", "office", "100.96.0.2:50080", "192.168.0.10:8080", "tcp", "deny", "-", "0B", "0B", "0s"},
		{local(3 * time.Hour), "alice@example.com", "laptop", "office", "100.96.0.2:50022", "192.168.0.10:22", "tcp", "allow", "1", "5.0KiB", "3.5MiB", "1h2m5s"},
	}
	var got [][]string
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		got = append(got, columns(line))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("flows table (-want +got):\n%s\n%s", diff, out)
	}
}

func TestFlowsFilters(t *testing.T) {
	tc := withFlows(t)
	tests := []struct {
		args string
		want []string
	}{
		{"", []string{"ping", "dns", "web", "ssh"}},
		{"--user alice@example.com", []string{"web", "ssh"}},
		{"--dest 192.168.0.0/24", []string{"ping", "web", "ssh"}},
		{"--dest 192.168.0.10", []string{"web", "ssh"}},
		{"--since 1h", []string{"ping", "dns"}},
		{"--since 1d", []string{"ping", "dns", "web", "ssh"}},
		{"--denied", []string{"ping", "web"}},
		{"--limit 1", []string{"ping"}},
		{"--denied --user alice@example.com --dest 192.168.0.10 --since 150m --limit 10", []string{"web"}},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			out, _, err := run(t, tc.admin, append([]string{"flows", "--json"}, strings.Fields(tt.args)...)...)
			if err != nil {
				t.Fatal(err)
			}
			var recs []wire.FlowRecord
			if err := json.Unmarshal([]byte(out), &recs); err != nil {
				t.Fatalf("--json printed %q: %v", out, err)
			}
			ids := []string{}
			for _, r := range recs {
				ids = append(ids, r.ID)
			}
			if diff := cmp.Diff(tt.want, ids); diff != "" {
				t.Errorf("flows %s (-want +got):\n%s", tt.args, diff)
			}
		})
	}
}

func TestFlowsEmpty(t *testing.T) {
	tc := newTestCoordinator(t)
	for _, tt := range []struct{ args, want string }{
		{"flows", "no flows recorded: connectors report each flow once it ends\n"},
		{"flows --denied", "no flows match\n"},
		{"flows --json", "[]\n"},
	} {
		out, _, err := run(t, tc.admin, strings.Fields(tt.args)...)
		if err != nil {
			t.Fatalf("%s: %v", tt.args, err)
		}
		if out != tt.want {
			t.Errorf("%s printed %q, want %q", tt.args, out, tt.want)
		}
	}
}

func TestFlowsRejects(t *testing.T) {
	tc := newTestCoordinator(t)
	tests := []struct{ args, want string }{
		{"flows --user bob", `--user: user "bob" is not an e-mail address (name@domain)`},
		{"flows --dest 192.168.0", `--dest "192.168.0" is not a CIDR prefix or an IP address (for example 192.168.0.0/24 or 192.168.0.10)`},
		{"flows --dest 10.0.0.0/40", `--dest "10.0.0.0/40" is not a CIDR prefix or an IP address (for example 192.168.0.0/24 or 192.168.0.10)`},
		{"flows --since yesterday", `--since "yesterday" is not a positive duration (for example 30m, 24h or 7d)`},
		{"flows --since -1h", `--since "-1h" is not a positive duration (for example 30m, 24h or 7d)`},
		{"flows --limit 0", `--limit 0 is not from 1 to 10000`},
		{"flows --limit 10001", `--limit 10001 is not from 1 to 10000`},
		{"flows extra", `usage: warren flows [--user USER] [--dest CIDR|IP] [--since DURATION] [--denied] [--limit N] [--json]`},
		{"flows --bogus", `flag provided but not defined: -bogus (see: warren flows --help)`},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			_, _, err := run(t, tc.admin, strings.Fields(tt.args)...)
			if err == nil || err.Error() != tt.want {
				t.Errorf("error:\n got %v\nwant %s", err, tt.want)
			}
		})
	}
}

// TestFlowsGoldenJSON pins the --json output scripts depend on.
func TestFlowsGoldenJSON(t *testing.T) {
	tc := withFlows(t)
	out, _, err := run(t, tc.admin, "flows", "--json", "--limit", "2")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "flows.json")
	if *update {
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), out); diff != "" {
		t.Errorf("flows --json (-golden +got):\n%s", diff)
	}
}

func TestCoordinatorFlowRetention(t *testing.T) {
	tests := []struct {
		args    string
		want    time.Duration
		wantErr string
	}{
		{"", 720 * time.Hour, ""},
		{"--flow-retention 48h", 48 * time.Hour, ""},
		{"--flow-retention 90d", 90 * 24 * time.Hour, ""},
		{"--flow-retention 0s", 0, `--flow-retention "0s" is not a positive duration (for example 720h or 90d)`},
		{"--flow-retention forever", 0, `--flow-retention "forever" is not a positive duration (for example 720h or 90d)`},
	}
	for _, tt := range tests {
		t.Run(tt.args, func(t *testing.T) {
			var got *CoordinatorOptions
			var out bytes.Buffer
			app := New(Env{Stdout: &out, Stderr: &out}, Roles{Coordinator: func(_ context.Context, o CoordinatorOptions) error {
				got = &o
				return nil
			}})
			args := append([]string{"warren", "coordinator", "--data", t.TempDir()}, strings.Fields(tt.args)...)
			err := app.RunContext(context.Background(), Permute(app, args))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Errorf("error:\n got %v\nwant %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got == nil || got.FlowRetention != tt.want {
				t.Errorf("coordinator started with %+v, want FlowRetention %v", got, tt.want)
			}
		})
	}
}

func TestRuleCell(t *testing.T) {
	for rule, want := range map[int]string{1: "1", 42: "42", wire.SSHRuleBase + 1: "ssh 1", wire.SSHRuleBase + 12: "ssh 12"} {
		if got := ruleCell(rule); got != want {
			t.Errorf("ruleCell(%d) = %q, want %q", rule, got, want)
		}
	}
}
