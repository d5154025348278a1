package store

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/overlay/wire"
)

// flowCmp compares flow records, netip values included.
var flowCmp = cmp.Options{cmpOpts, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })}

// flow is a record of user's flow to dst starting at t0+at.
func flow(id, user, dst string, at time.Duration, decision string) wire.FlowRecord {
	start := t0.Add(at)
	return wire.FlowRecord{
		ID:        id,
		User:      user,
		Node:      "laptop",
		Src:       netip.MustParseAddrPort("100.96.0.2:50000"),
		Dst:       netip.MustParseAddrPort(dst),
		Proto:     wire.ProtoTCP,
		Decision:  decision,
		Reason:    "because",
		Start:     start,
		End:       start.Add(1500 * time.Millisecond),
		BytesUp:   10,
		BytesDown: 20,
	}
}

func ids(recs []wire.FlowRecord) []string {
	out := []string{}
	for _, r := range recs {
		out = append(out, r.ID)
	}
	return out
}

func mustInsertFlows(t *testing.T, s *SQLite, connector string, recs ...wire.FlowRecord) []wire.FlowRecord {
	t.Helper()
	stored, err := s.InsertFlows(context.Background(), connector, recs)
	if err != nil {
		t.Fatalf("InsertFlows: %v", err)
	}
	return stored
}

func TestFlowsRoundTrip(t *testing.T) {
	s, path := openTest(t)
	ctx := context.Background()
	v0 := mustLoad(t, s).Version
	rec := flow("f1", "alice@example.com", "192.168.0.10:22", 0, wire.DecisionAllow)
	rec.Rule = 3
	rec.Start = rec.Start.In(elsewhere)
	rec.BytesUp = math.MaxUint64 // clamped to what SQLite holds
	icmp := flow("f2", "", "[2001:db8::1]:0", time.Second, wire.DecisionDeny)
	icmp.Proto, icmp.Src = wire.ProtoICMP, netip.AddrPort{}

	stored := mustInsertFlows(t, s, "office", rec, icmp)
	if got, want := ids(stored), []string{"f1", "f2"}; !cmp.Equal(got, want) {
		t.Fatalf("stored %v, want %v", got, want)
	}
	if stored[0].Connector != "office" {
		t.Errorf("stored record's connector = %q, want office", stored[0].Connector)
	}
	if v := mustLoad(t, s).Version; v != v0 {
		t.Errorf("InsertFlows bumped the version: %d → %d", v0, v)
	}

	// Reopen: the records are durable and come back exact, newest first.
	s.Close()
	s2, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	got, err := s2.QueryFlows(ctx, FlowQuery{})
	if err != nil {
		t.Fatal(err)
	}
	wantRec := rec
	wantRec.Connector, wantRec.Start, wantRec.BytesUp = "office", rec.Start.UTC(), math.MaxInt64
	wantICMP := icmp
	wantICMP.Connector = "office"
	if diff := cmp.Diff([]wire.FlowRecord{wantICMP, wantRec}, got, flowCmp); diff != "" {
		t.Errorf("QueryFlows (-want +got):\n%s", diff)
	}
}

func TestInsertFlowsIgnoresRepeats(t *testing.T) {
	s, _ := openTest(t)
	a := flow("a", "alice@example.com", "192.168.0.10:22", 0, wire.DecisionAllow)
	b := flow("b", "alice@example.com", "192.168.0.10:22", time.Second, wire.DecisionDeny)
	mustInsertFlows(t, s, "office", a)

	// A batch sent again stores only what is new; the same ID from
	// another connector is a different record; a repeat inside one batch
	// is stored once.
	changed := a
	changed.BytesUp = 999
	if got, want := ids(mustInsertFlows(t, s, "office", changed, b, b)), []string{"b"}; !cmp.Equal(got, want) {
		t.Errorf("second batch stored %v, want %v", got, want)
	}
	if got, want := ids(mustInsertFlows(t, s, "lab", a)), []string{"a"}; !cmp.Equal(got, want) {
		t.Errorf("other connector stored %v, want %v", got, want)
	}
	all, err := s.QueryFlows(context.Background(), FlowQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 {
		t.Fatalf("%d records stored, want 3: %v", len(all), ids(all))
	}
	for _, r := range all {
		if r.ID == "a" && r.Connector == "office" && r.BytesUp != 10 {
			t.Errorf("a repeat overwrote the first record: bytes up %d, want 10", r.BytesUp)
		}
	}
	if got := mustInsertFlows(t, s, "office"); len(got) != 0 {
		t.Errorf("empty batch stored %v", got)
	}
}

func TestQueryFlows(t *testing.T) {
	s, _ := openTest(t)
	mustInsertFlows(t, s, "office",
		flow("1", "alice@example.com", "192.168.0.10:22", 1*time.Minute, wire.DecisionAllow),
		flow("2", "alice@example.com", "192.168.0.10:8080", 2*time.Minute, wire.DecisionDeny),
		flow("3", "bob@example.com", "192.168.1.5:443", 3*time.Minute, wire.DecisionAllow),
		flow("4", "bob@example.com", "10.0.0.1:53", 4*time.Minute, wire.DecisionDeny),
		flow("5", "", "[2001:db8::5]:22", 5*time.Minute, wire.DecisionAllow),
	)
	mustInsertFlows(t, s, "lab",
		flow("6", "alice@example.com", "192.168.0.11:22", 5*time.Minute, wire.DecisionAllow), // same start as 5, inserted later
	)
	tests := []struct {
		name string
		q    FlowQuery
		want []string
	}{
		{"all, newest first; ties in insertion order reversed", FlowQuery{}, []string{"6", "5", "4", "3", "2", "1"}},
		{"user", FlowQuery{User: "alice@example.com"}, []string{"6", "2", "1"}},
		{"unknown user", FlowQuery{User: "carol@example.com"}, []string{}},
		{"dest prefix", FlowQuery{Dest: netip.MustParsePrefix("192.168.0.0/24")}, []string{"6", "2", "1"}},
		{"dest host", FlowQuery{Dest: netip.MustParsePrefix("192.168.0.10/32")}, []string{"2", "1"}},
		{"dest v6", FlowQuery{Dest: netip.MustParsePrefix("2001:db8::/32")}, []string{"5"}},
		{"since, inclusive", FlowQuery{Since: t0.Add(4 * time.Minute)}, []string{"6", "5", "4"}},
		{"since in another zone", FlowQuery{Since: t0.Add(4 * time.Minute).In(elsewhere)}, []string{"6", "5", "4"}},
		{"denied", FlowQuery{DeniedOnly: true}, []string{"4", "2"}},
		{"limit", FlowQuery{Limit: 2}, []string{"6", "5"}},
		{"limit with dest filter", FlowQuery{Dest: netip.MustParsePrefix("192.168.0.0/16"), Limit: 2}, []string{"6", "3"}},
		{"everything at once", FlowQuery{User: "alice@example.com", Dest: netip.MustParsePrefix("192.168.0.10/32"), Since: t0.Add(time.Minute), DeniedOnly: true, Limit: 5}, []string{"2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.QueryFlows(context.Background(), tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, ids(got)); diff != "" {
				t.Errorf("QueryFlows(%+v) (-want +got):\n%s", tt.q, diff)
			}
		})
	}
}

func TestPruneFlows(t *testing.T) {
	s, _ := openTest(t)
	ctx := context.Background()
	// More than one pruning batch of old records, and a few new ones.
	old := make([]wire.FlowRecord, 0, pruneBatch+7)
	for i := range cap(old) {
		old = append(old, flow(fmt.Sprintf("old-%d", i), "alice@example.com", "192.168.0.10:22", time.Duration(i)*time.Millisecond, wire.DecisionAllow))
	}
	for i := 0; i < len(old); i += wire.MaxFlowReport {
		mustInsertFlows(t, s, "office", old[i:min(i+wire.MaxFlowReport, len(old))]...)
	}
	cut := t0.Add(time.Hour)
	mustInsertFlows(t, s, "office",
		flow("at-cut", "alice@example.com", "192.168.0.10:22", time.Hour, wire.DecisionAllow),
		flow("new", "alice@example.com", "192.168.0.10:22", 2*time.Hour, wire.DecisionAllow),
	)
	v0 := mustLoad(t, s).Version

	n, err := s.PruneFlows(ctx, cut)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(old) {
		t.Errorf("PruneFlows deleted %d, want %d", n, len(old))
	}
	got, err := s.QueryFlows(ctx, FlowQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"new", "at-cut"}, ids(got)); diff != "" {
		t.Errorf("left after pruning (-want +got):\n%s", diff)
	}
	if n, err := s.PruneFlows(ctx, cut); err != nil || n != 0 {
		t.Errorf("second PruneFlows = %d, %v; want 0, nil", n, err)
	}
	if v := mustLoad(t, s).Version; v != v0 {
		t.Errorf("PruneFlows bumped the version: %d → %d", v0, v)
	}
}
