package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/warrennet/warren/overlay/coord/store"
	"github.com/warrennet/warren/overlay/ctl"
	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/test/coordtest"
)

// evil is text a compromised coordinator, or one whose store predates
// validation, could send: colour, a bidi override, a C1 CSI, and a tab
// and a newline that would forge a table cell and row.
const evil = "\x1b[31mred\x1b[0m \u202eevil\u009b\nfake\trow"

// evilEscaped is the part of evil every printer must show as escapes.
const evilEscaped = `\x1b[31mred\x1b[0m \u202eevil\u009b`

// checkPrintable fails if out holds anything a terminal would act on
// other than the tabs and newlines of the layout.
func checkPrintable(t *testing.T, what, out string) {
	t.Helper()
	for i, r := range out {
		if r != '\n' && r != '\t' && (wire.UnsafeRune(r) || r == 0xfffd) {
			t.Errorf("%s: output holds %U at byte %d:\n%s", what, r, i, out)
			return
		}
	}
}

func TestRowEscapesEveryCell(t *testing.T) {
	var b bytes.Buffer
	row(&b, "10.0.0.0/8", evil, 3)
	want := "10.0.0.0/8\t" + `\x1b[31mred\x1b[0m \u202eevil\u009b\nfake\trow` + "\t3\n"
	if got := b.String(); got != want {
		t.Errorf("row = %q, want %q", got, want)
	}
}

func TestTextWriter(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{"plain", []string{"route 10.0.0.0/8 added\n"}, "route 10.0.0.0/8 added\n"},
		{"layout kept", []string{"a\tb\nc\n"}, "a\tb\nc\n"},
		{"ANSI", []string{"x\x1b[2Jy\n"}, `x\x1b[2Jy` + "\n"},
		{"CR and bell", []string{"ok\rfake\a\n"}, `ok\rfake\a` + "\n"},
		{"bidi", []string{"a\u202eb"}, `a\u202eb`},
		{"C1 cut across writes", []string{"a\xc2", "\x9bb"}, `a\u009bb`},
		{"emoji cut across writes", []string{"\xf0\x9f", "\x98", "\x80!"}, "😀!"},
		{"bytes that are not UTF-8", []string{"a\xff\x9bb"}, `a\xff\x9bb`},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		w := newTextWriter(&b)
		for _, s := range tt.writes {
			if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
				t.Errorf("%s: Write = %d, %v, want %d, nil", tt.name, n, err, len(s))
			}
		}
		if got := b.String(); got != tt.want {
			t.Errorf("%s: wrote %q, want %q", tt.name, got, tt.want)
		}
	}
}

// fakeCoordinator answers admin calls with fixed bodies, as a
// compromised coordinator (or one whose store holds text from before
// names and comments were checked) could: the real one refuses to store
// evil, so it cannot serve it.
func fakeCoordinator(t *testing.T, bodies map[string]any) string {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		v, ok := bodies[r.Method+" "+r.URL.Path]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			v = wire.Error{Code: wire.CodeNotFound, Message: "no such thing: " + evil}
		}
		if err := json.NewEncoder(w).Encode(v); err != nil {
			t.Error(err)
		}
	}))
	t.Cleanup(srv.Close)
	return wire.Token{URL: srv.URL, Pin: wire.CertPin(srv.Certificate().Raw), Secret: "0123456789abcdef0123"}.String()
}

// TestHumanOutputEscapesCoordinatorText: every admin command that prints
// text from the coordinator escapes its control and format characters
// in human output, in table cells including tabs and newlines; --json
// passes the text on intact for programs.
func TestHumanOutputEscapesCoordinatorText(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	pfx := netip.MustParsePrefix("10.0.0.0/8")
	addr := netip.MustParseAddr("10.0.0.5")
	bodies := map[string]any{
		"GET " + wire.PathRoutes:      []wire.Route{{Prefix: pfx, Connector: "office", Comment: evil, CreatedAt: now}},
		"GET " + wire.PathRouteLookup: wire.RouteLookup{IP: addr, Reason: evil},
		"GET " + wire.PathHosts:       []wire.Host{{Name: "db", Address: addr, Comment: evil, CreatedAt: now}},
		"GET " + wire.PathNodes:       []wire.NodeStatus{{Node: wire.Node{ID: "n1", Name: evil, Role: wire.RoleClient, User: evil, Address: netip.MustParseAddr("100.96.0.2")}, EnrolledAt: now}},
		"GET " + wire.PathTokens:      []wire.TokenInfo{{ID: "t1", Name: evil, Role: wire.RoleClient, User: evil, CreatedAt: now}},
		"GET " + wire.PathSplit:       wire.SplitPolicy{Mode: wire.SplitExclude, Exclude: []wire.SplitEntry{{Prefix: pfx, Comment: evil}}},
		"GET " + wire.PathSplitEffective: wire.SplitEffective{Mode: wire.SplitExclude, Tunnel: []wire.SplitDecision{{Prefix: pfx, Connector: "office", Reason: evil}},
			Warnings: []string{evil}},
		"GET " + wire.PathPolicy:    wire.PolicyDocument{Mode: wire.PolicyEnforced, Document: "{\n  // " + evil + "\n}", Reason: evil},
		"GET " + wire.PathPolicyWhy: wire.PolicyDecision{User: "alice@example.com", Dest: netip.MustParseAddrPort("10.0.0.5:22"), Proto: wire.ProtoTCP, Allow: true, Rule: 1, Reason: evil, RuleText: evil},
		"GET " + wire.PathFlows: []wire.FlowRecord{{ID: "f1", Connector: evil, User: evil, Node: evil, Src: netip.MustParseAddrPort("100.96.0.2:4000"),
			Dst: netip.MustParseAddrPort("10.0.0.5:22"), Proto: wire.ProtoTCP, Decision: wire.DecisionDeny, Reason: evil, Start: now, End: now}},
	}
	admin := fakeCoordinator(t, bodies)
	tests := []struct {
		args  string
		table bool // evil is in a table cell: its tab and newline are escaped too
	}{
		{"routes ls", true},
		{"routes get 10.0.0.5", false},
		{"hosts ls", true},
		{"nodes ls", true},
		{"token ls", true},
		{"split ls", true},
		{"split show --effective", true},
		{"policy get", false},
		{"policy why alice@example.com 10.0.0.5:22", false},
		{"flows", true},
	}
	for _, tt := range tests {
		stdout, stderr, err := run(t, admin, strings.Fields(tt.args)...)
		if err != nil {
			t.Errorf("%s: %v", tt.args, err)
			continue
		}
		out := stdout + stderr
		checkPrintable(t, tt.args, out)
		if !strings.Contains(out, evilEscaped) {
			t.Errorf("%s: output does not show %s:\n%s", tt.args, evilEscaped, out)
		}
		if tt.table && !strings.Contains(out, wire.EscapeText(evil)) {
			t.Errorf("%s: a cell's tab or newline is not escaped:\n%s", tt.args, out)
		}
	}

	// --json hands programs the text as the coordinator sent it.
	stdout, _, err := run(t, admin, "routes", "ls", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var rs []wire.Route
	if err := json.Unmarshal([]byte(stdout), &rs); err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || rs[0].Comment != evil {
		t.Errorf("routes ls --json = %+v, want the comment %q intact", rs, evil)
	}

	// An error from the coordinator: main prints it with EscapeLines.
	_, _, err = run(t, admin, "routes", "rm", "10.0.0.0/8")
	if err == nil {
		t.Fatal("routes rm against a coordinator answering 404: no error")
	}
	msg := EscapeLines(err.Error())
	checkPrintable(t, "error", msg)
	if !strings.Contains(msg, evilEscaped) {
		t.Errorf("error printed as %q, want it to show %s", msg, evilEscaped)
	}
}

// TestStatusEscapesDaemonText: text the daemon relays from the
// coordinator and connectors (peer names, reasons, denials) is escaped.
func TestStatusEscapesDaemonText(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	st := ctl.Status{
		State: ctl.StateUp, Enrolled: true, Interface: "warren0",
		Node:     wire.Node{Name: "laptop", Address: netip.MustParseAddr("100.96.0.2")},
		Peers:    []ctl.PeerStatus{{Name: evil, Address: netip.MustParseAddr("100.96.0.3"), Online: true}},
		Routes:   []ctl.RouteStatus{{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Connector: evil, Live: true, Reason: evil}},
		Warnings: []string{evil},
		Denials:  []ctl.Denial{{At: now, Dest: netip.MustParseAddrPort("10.0.0.5:22"), Proto: wire.ProtoTCP, Connector: evil, Reason: evil, Count: 1}},
	}
	var b bytes.Buffer
	if err := printStatus(newTextWriter(&b), &st, now); err != nil {
		t.Fatal(err)
	}
	checkPrintable(t, "status", b.String())
	if !strings.Contains(b.String(), wire.EscapeText(evil)) {
		t.Errorf("status does not escape a cell:\n%s", b.String())
	}
}

// TestOlderStoreTextPrintsEscaped: a real coordinator whose store holds
// a route and a host comment written before comments were checked (by
// an older version) serves them as they are; the CLI prints them
// escaped.
func TestOlderStoreTextPrintsEscaped(t *testing.T) {
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	s := coordtest.Start(t, coordtest.Options{Seed: func(ctx context.Context, st store.Store) error {
		if _, err := st.AddRoute(ctx, wire.Route{Prefix: netip.MustParsePrefix("10.0.0.0/8"), Connector: "office", Comment: evil, CreatedAt: now}); err != nil {
			return err
		}
		_, err := st.AddHost(ctx, wire.Host{Name: "db", Address: netip.MustParseAddr("10.0.0.5"), Comment: evil, CreatedAt: now})
		return err
	}})
	for _, args := range []string{"routes ls", "hosts ls"} {
		stdout, stderr, err := run(t, s.Admin.String(), strings.Fields(args)...)
		if err != nil {
			t.Fatalf("%s: %v", args, err)
		}
		checkPrintable(t, args, stdout+stderr)
		if !strings.Contains(stdout, wire.EscapeText(evil)) {
			t.Errorf("%s: the comment is not shown escaped:\n%s", args, stdout)
		}
	}
}
