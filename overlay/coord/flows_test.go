package coord

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/overlay/coord/store"
	"github.com/warrennet/warren/overlay/wire"
)

// flowRec is a flow of client node to dst that started ago before the
// harness clock's now.
func (h *harness) flowRec(id, node, dst, decision string, ago time.Duration) wire.FlowRecord {
	start := h.clock.Now().Add(-ago)
	return wire.FlowRecord{
		ID:        id,
		User:      "alice@example.com",
		Node:      node,
		Src:       netip.MustParseAddrPort("100.96.0.2:40000"),
		Dst:       netip.MustParseAddrPort(dst),
		Proto:     wire.ProtoTCP,
		Decision:  decision,
		Reason:    "test",
		Start:     start,
		End:       start.Add(time.Second),
		BytesUp:   1,
		BytesDown: 2,
	}
}

func flowIDs(recs []wire.FlowRecord) []string {
	out := []string{}
	for _, r := range recs {
		out = append(out, r.ID)
	}
	return out
}

func (h *harness) flows(q FlowQuery) []wire.FlowRecord {
	h.t.Helper()
	recs, err := h.c.Flows(context.Background(), q)
	if err != nil {
		h.t.Fatalf("Flows(%+v): %v", q, err)
	}
	return recs
}

func wireCode(err error) string {
	var we *wire.Error
	if errors.As(err, &we) {
		return we.Code
	}
	return ""
}

func TestReportFlowsRefusals(t *testing.T) {
	h := newHarness(t)
	office := h.enroll(wire.RoleConnector, "office")
	laptop := h.enroll(wire.RoleClient, "laptop")
	good := h.flowRec("f1", "laptop", "192.168.0.10:22", wire.DecisionAllow, time.Minute)
	bad := h.flowRec("f2", "laptop", "192.168.0.10:22", "maybe", time.Minute)

	tests := []struct {
		name     string
		node     wire.Node
		recs     []wire.FlowRecord
		wantCode string
	}{
		{"a client reports", laptop.Node, []wire.FlowRecord{good}, wire.CodeUnauthorized},
		{"one record is invalid", office.Node, []wire.FlowRecord{good, bad}, wire.CodeInvalid},
		{"too many records", office.Node, make([]wire.FlowRecord, wire.MaxFlowReport+1), wire.CodeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := h.c.ReportFlows(context.Background(), tt.node, tt.recs)
			if got := wireCode(err); got != tt.wantCode {
				t.Errorf("ReportFlows: got %v (code %q), want code %q", err, got, tt.wantCode)
			}
		})
	}
	if got := h.flows(FlowQuery{}); len(got) != 0 {
		t.Errorf("refused reports stored %v", flowIDs(got))
	}
}

func TestReportFlowsStoresAsTheConnector(t *testing.T) {
	h := newHarness(t)
	office := h.enroll(wire.RoleConnector, "office")
	h.enroll(wire.RoleClient, "laptop")
	v0 := h.c.Version()
	rec := h.flowRec("f1", "laptop", "192.168.0.10:22", wire.DecisionAllow, time.Minute)
	rec.Connector = "somebody-else"
	for range 2 { // the second report is a repeat, stored once
		if err := h.c.ReportFlows(context.Background(), office.Node, []wire.FlowRecord{rec}); err != nil {
			t.Fatal(err)
		}
	}
	got := h.flows(FlowQuery{})
	want := rec
	want.Connector = "office"
	if diff := cmp.Diff([]wire.FlowRecord{want}, got, netipEqual, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("stored flows (-want +got):\n%s", diff)
	}
	if v := h.c.Version(); v != v0 {
		t.Errorf("a flow report moved the state version %d → %d", v0, v)
	}
}

// nextDenial waits for the next denial on conn, skipping other messages.
func nextDenial(t *testing.T, conn *fakeConn, within time.Duration) (wire.FlowRecord, bool) {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case m := <-conn.out:
			if m.Type == wire.MsgDenial {
				return *m.Denial, true
			}
		case <-deadline:
			return wire.FlowRecord{}, false
		}
	}
}

func TestDenialsReachTheClientsStreams(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	office := h.enroll(wire.RoleConnector, "office")
	laptop := h.enroll(wire.RoleClient, "laptop")
	phone := h.enroll(wire.RoleClient, "phone")

	// The laptop has two streams (say, a reconnect overlapping the old
	// one); both get its denials. The connector's stream gets none.
	l1, l2, pc, oc := newFakeConn(), newFakeConn(), newFakeConn(), newFakeConn()
	for _, s := range []struct {
		node wire.Node
		conn *fakeConn
	}{{laptop.Node, l1}, {laptop.Node, l2}, {phone.Node, pc}, {office.Node, oc}} {
		h.serve(s.node, s.conn)
		nextNetMap(t, s.conn)
	}
	eventually(t, 2*time.Second, "every stream subscribed", func() bool {
		h.c.denials.mu.Lock()
		defer h.c.denials.mu.Unlock()
		return len(h.c.denials.subs[laptop.Node.ID]) == 2 && len(h.c.denials.subs[phone.Node.ID]) == 1
	})

	report := []wire.FlowRecord{
		h.flowRec("allowed", "laptop", "192.168.0.10:22", wire.DecisionAllow, time.Minute),
		h.flowRec("denied-laptop", "laptop", "192.168.0.10:8080", wire.DecisionDeny, time.Minute),
		h.flowRec("denied-phone", "phone", "192.168.0.10:8080", wire.DecisionDeny, time.Minute),
		h.flowRec("denied-ghost", "ghost", "192.168.0.10:8080", wire.DecisionDeny, time.Minute),
		h.flowRec("denied-office", "office", "192.168.0.10:8080", wire.DecisionDeny, time.Minute), // not a client
	}
	if err := h.c.ReportFlows(ctx, office.Node, report); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		conn *fakeConn
		want string
	}{{"laptop stream 1", l1, "denied-laptop"}, {"laptop stream 2", l2, "denied-laptop"}, {"phone", pc, "denied-phone"}} {
		d, ok := nextDenial(t, tt.conn, 2*time.Second)
		if !ok {
			t.Fatalf("%s: no denial within 2s", tt.name)
		}
		if d.ID != tt.want || d.Connector != "office" || d.Decision != wire.DecisionDeny {
			t.Errorf("%s got denial %s from %q (%s), want %s from office", tt.name, d.ID, d.Connector, d.Decision, tt.want)
		}
	}

	// The same report again stores nothing new and pushes nothing; the
	// next new denial is the next message the laptop sees.
	if err := h.c.ReportFlows(ctx, office.Node, report); err != nil {
		t.Fatal(err)
	}
	if err := h.c.ReportFlows(ctx, office.Node, []wire.FlowRecord{h.flowRec("later", "laptop", "192.168.0.10:25", wire.DecisionDeny, 0)}); err != nil {
		t.Fatal(err)
	}
	if d, ok := nextDenial(t, l1, 2*time.Second); !ok || d.ID != "later" {
		t.Errorf("after a repeated report the laptop got denial %q (ok %v), want later", d.ID, ok)
	}
	if d, ok := nextDenial(t, oc, 100*time.Millisecond); ok {
		t.Errorf("the connector's stream got denial %s", d.ID)
	}
}

func TestDenialsNeverHoldUpReports(t *testing.T) {
	h := newHarness(t)
	office := h.enroll(wire.RoleConnector, "office")
	laptop := h.enroll(wire.RoleClient, "laptop")
	// A stream that never takes its denials.
	queue, unsubscribe := h.c.denials.subscribe(laptop.Node.ID)
	defer unsubscribe()

	done := make(chan error, 1)
	go func() {
		for i := range 3 {
			recs := make([]wire.FlowRecord, wire.MaxFlowReport)
			for j := range recs {
				recs[j] = h.flowRec(fmt.Sprintf("%d-%d", i, j), "laptop", "192.168.0.10:8080", wire.DecisionDeny, time.Minute)
			}
			if err := h.c.ReportFlows(context.Background(), office.Node, recs); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reports blocked behind a client stream that does not read")
	}
	if got := len(queue); got != denialBuffer {
		t.Errorf("%d denials queued, want the buffer full (%d)", got, denialBuffer)
	}
	if got := len(h.flows(FlowQuery{Limit: MaxFlowLimit})); got != 3*wire.MaxFlowReport {
		t.Errorf("%d records stored, want %d", got, 3*wire.MaxFlowReport)
	}
}

func TestFlowsQuery(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	office := h.enroll(wire.RoleConnector, "office")
	recs := []wire.FlowRecord{
		h.flowRec("old", "laptop", "192.168.0.10:22", wire.DecisionAllow, 2*time.Hour),
		h.flowRec("recent", "laptop", "192.168.1.10:22", wire.DecisionDeny, 30*time.Minute),
	}
	recs[1].User = "bob@example.com"
	if err := h.c.ReportFlows(ctx, office.Node, recs); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		q    FlowQuery
		want []string
	}{
		{FlowQuery{}, []string{"recent", "old"}},
		{FlowQuery{Since: time.Hour}, []string{"recent"}},
		{FlowQuery{User: "alice@example.com"}, []string{"old"}},
		{FlowQuery{Dest: netip.MustParsePrefix("192.168.0.77/24")}, []string{"old"}}, // host bits ignored
		{FlowQuery{DeniedOnly: true}, []string{"recent"}},
		{FlowQuery{Limit: 1}, []string{"recent"}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, flowIDs(h.flows(tt.q))); diff != "" {
			t.Errorf("Flows(%+v) (-want +got):\n%s", tt.q, diff)
		}
	}
	for _, q := range []FlowQuery{{Limit: -1}, {Limit: MaxFlowLimit + 1}, {Since: -time.Hour}} {
		if _, err := h.c.Flows(ctx, q); wireCode(err) != wire.CodeInvalid {
			t.Errorf("Flows(%+v) = %v, want an invalid-input error", q, err)
		}
	}
}

func TestFlowsDefaultLimit(t *testing.T) {
	h := newHarness(t)
	office := h.enroll(wire.RoleConnector, "office")
	for i := range 2 {
		recs := make([]wire.FlowRecord, wire.MaxFlowReport)
		for j := range recs {
			recs[j] = h.flowRec(fmt.Sprintf("%d-%d", i, j), "laptop", "192.168.0.10:22", wire.DecisionAllow, time.Minute)
		}
		if err := h.c.ReportFlows(context.Background(), office.Node, recs); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(h.flows(FlowQuery{})); got != DefaultFlowLimit {
		t.Errorf("Flows with no limit returned %d records, want %d", got, DefaultFlowLimit)
	}
}

// pruneCounter counts the PruneFlows calls that reach the store.
type pruneCounter struct {
	store.Store
	calls atomic.Int64
}

func (p *pruneCounter) PruneFlows(ctx context.Context, before time.Time) (int, error) {
	p.calls.Add(1)
	return p.Store.PruneFlows(ctx, before)
}

func TestRunPrunesFlows(t *testing.T) {
	h := newHarness(t)
	office := h.enroll(wire.RoleConnector, "office")
	recs := []wire.FlowRecord{
		h.flowRec("expired", "laptop", "192.168.0.10:22", wire.DecisionAllow, DefaultFlowRetention+time.Minute),
		h.flowRec("expiring", "laptop", "192.168.0.10:22", wire.DecisionAllow, DefaultFlowRetention-time.Hour),
		h.flowRec("fresh", "laptop", "192.168.0.10:22", wire.DecisionAllow, time.Minute),
	}
	if err := h.c.ReportFlows(context.Background(), office.Node, recs); err != nil {
		t.Fatal(err)
	}
	counter := &pruneCounter{Store: h.store}
	h.c.store = counter
	run := func(every time.Duration) (stop func()) {
		h.c.pruneEvery = every
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- h.c.Run(ctx, time.Hour) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}

	// Run prunes as it starts: its ticker would wait an hour.
	stop := run(time.Hour)
	eventually(t, 2*time.Second, "expired record pruned at start", func() bool {
		return cmp.Equal(flowIDs(h.flows(FlowQuery{})), []string{"fresh", "expiring"})
	})
	stop()
	if got := counter.calls.Load(); got != 1 {
		t.Errorf("Run pruned %d times in its first moments, want 1", got)
	}

	// Then on its ticker, as records age past retention.
	stop = run(20 * time.Millisecond)
	defer stop()
	h.clock.Advance(2 * time.Hour)
	eventually(t, 2*time.Second, "expiring record pruned on the ticker", func() bool {
		return counter.calls.Load() >= 4 && cmp.Equal(flowIDs(h.flows(FlowQuery{})), []string{"fresh"})
	})
}

func TestFlowRetentionConfig(t *testing.T) {
	h := newHarness(t)
	for _, tt := range []struct {
		retention time.Duration
		want      time.Duration
		wantErr   bool
	}{
		{0, DefaultFlowRetention, false},
		{time.Hour, time.Hour, false},
		{-time.Hour, 0, true},
	} {
		c, err := New(context.Background(), Config{Store: h.store, URL: "https://198.51.100.10:8443", FlowRetention: tt.retention})
		if tt.wantErr {
			if err == nil {
				t.Errorf("New with retention %v succeeded, want an error", tt.retention)
			}
			continue
		}
		if err != nil {
			t.Fatalf("New with retention %v: %v", tt.retention, err)
		}
		if c.flowRetention != tt.want {
			t.Errorf("retention %v: coordinator keeps flows %v, want %v", tt.retention, c.flowRetention, tt.want)
		}
	}
}
