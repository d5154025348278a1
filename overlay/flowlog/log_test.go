package flowlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrennet/warren/overlay/wire"
)

const testTimeout = 10 * time.Second

// waitFor polls cond until it holds or testTimeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func record(id string, decision string) wire.FlowRecord {
	start := time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)
	return wire.FlowRecord{
		ID: id, User: "alice@example.com", Node: "alice-laptop",
		Src:      netip.MustParseAddrPort("100.96.0.2:40000"),
		Dst:      netip.MustParseAddrPort("192.168.0.10:22"),
		Proto:    wire.ProtoTCP,
		Decision: decision, Reason: "test",
		Start: start, End: start.Add(time.Second),
	}
}

func records(prefix string, n int, decision string) []wire.FlowRecord {
	out := make([]wire.FlowRecord, n)
	for i := range out {
		out[i] = record(fmt.Sprintf("%s-%d", prefix, i), decision)
	}
	return out
}

// sink is a Sink that fails while failing is set, and remembers every
// batch it took (and when).
type sink struct {
	mu      sync.Mutex
	failing bool
	calls   int
	batches [][]wire.FlowRecord
	at      []time.Time
}

func (s *sink) ReportFlows(ctx context.Context, recs []wire.FlowRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.failing {
		return errors.New("coordinator unreachable")
	}
	s.batches = append(s.batches, slices.Clone(recs))
	s.at = append(s.at, time.Now())
	return nil
}

func (s *sink) setFailing(f bool) {
	s.mu.Lock()
	s.failing = f
	s.mu.Unlock()
}

// ids returns the IDs delivered, in delivery order, duplicates included.
func (s *sink) ids() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, b := range s.batches {
		for _, r := range b {
			out = append(out, r.ID)
		}
	}
	return out
}

func (s *sink) callCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// running is a Log under Run, stopped at cleanup (or by stop).
type running struct {
	*Log
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, cfg Config) *running {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	l, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Log: l, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- l.Run(ctx) }()
	t.Cleanup(r.stop)
	return r
}

// stop ends Run and waits for it.
func (r *running) stop() {
	r.cancel()
	if err := <-r.done; err != nil {
		panic(err)
	}
	r.done <- nil // a second stop returns at once
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func segments(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+segmentExt))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestShipsEveryRecordOnce sends more records than one report holds and
// checks that each arrives, in order, in reports no larger than
// wire.MaxFlowReport, and that the spool is empty after.
func TestShipsEveryRecordOnce(t *testing.T) {
	dir := t.TempDir()
	s := &sink{}
	l := start(t, Config{Dir: dir, Sink: s, BatchDelay: 20 * time.Millisecond})
	want := records("r", 2500, wire.DecisionAllow)
	for _, r := range want {
		l.Record(r)
	}
	waitFor(t, "every record", func() bool { return len(s.ids()) >= len(want) })
	got := s.ids()
	var wantIDs []string
	for _, r := range want {
		wantIDs = append(wantIDs, r.ID)
	}
	if !slices.Equal(got, wantIDs) {
		t.Errorf("delivered %d records (first %q), want the %d in order", len(got), got[:min(3, len(got))], len(wantIDs))
	}
	s.mu.Lock()
	for _, b := range s.batches {
		if len(b) > wire.MaxFlowReport {
			t.Errorf("a report of %d records, more than %d", len(b), wire.MaxFlowReport)
		}
	}
	s.mu.Unlock()
	waitFor(t, "the spool to empty", func() bool { return l.Stats().Spooled == 0 && len(segments(t, dir)) <= 1 })
	if st := l.Stats(); st.Shipped != uint64(len(want)) || st.Lost != 0 || st.Dropped != 0 {
		t.Errorf("stats = %+v", st)
	}
}

// TestSinkFailsThenRecovers: while the sink fails nothing is lost; once it
// recovers every record is delivered, at least once and with its ID.
func TestSinkFailsThenRecovers(t *testing.T) {
	dir := t.TempDir()
	s := &sink{failing: true}
	l := start(t, Config{Dir: dir, Sink: s, BatchDelay: 10 * time.Millisecond, MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	want := records("down", 1500, wire.DecisionAllow)
	want = append(want, records("denied", 3, wire.DecisionDeny)...)
	for _, r := range want {
		l.Record(r)
	}
	waitFor(t, "failed sends", func() bool { return s.callCount() >= 3 })
	if got := s.ids(); len(got) != 0 {
		t.Fatalf("a failing sink took %d records", len(got))
	}
	s.setFailing(false)
	waitFor(t, "every record", func() bool { return len(unique(s.ids())) == len(want) })
	for _, r := range want {
		if !slices.Contains(s.ids(), r.ID) {
			t.Errorf("record %s never delivered", r.ID)
		}
	}
	if st := l.Stats(); st.Failures == 0 || st.Lost != 0 || st.Dropped != 0 {
		t.Errorf("stats = %+v, want failures and nothing lost", st)
	}
}

func unique(ids []string) []string {
	s := slices.Clone(ids)
	slices.Sort(s)
	return slices.Compact(s)
}

// TestRestartShipsTheSpool: records spooled while the coordinator is
// away survive a restart of the connector and are sent by the next run.
func TestRestartShipsTheSpool(t *testing.T) {
	dir := t.TempDir()
	down := &sink{failing: true}
	l := start(t, Config{Dir: dir, Sink: down, MinBackoff: time.Hour})
	want := records("before", 120, wire.DecisionAllow)
	want = append(want, record("denied", wire.DecisionDeny))
	for _, r := range want {
		l.Record(r)
	}
	l.stop() // what was queued is written before Run returns
	if got := down.ids(); len(got) != 0 {
		t.Fatalf("delivered %d while down", len(got))
	}

	up := &sink{}
	l2 := start(t, Config{Dir: dir, Sink: up})
	l2.Record(record("after", wire.DecisionDeny))
	waitFor(t, "every record", func() bool { return len(unique(up.ids())) == len(want)+1 })
	if got := up.ids(); got[0] != "before-0" {
		t.Errorf("the first record delivered is %s, want the oldest, before-0", got[0])
	}
}

// TestDenialIsSentAtOnce: a denial reaches the sink without waiting for
// the batch delay; an allowed record waits for it.
func TestDenialIsSentAtOnce(t *testing.T) {
	s := &sink{}
	l := start(t, Config{Dir: t.TempDir(), Sink: s, BatchDelay: time.Second})
	t0 := time.Now()
	l.Record(record("denied", wire.DecisionDeny))
	waitFor(t, "the denial", func() bool { return len(s.ids()) == 1 })
	if d := time.Since(t0); d > 300*time.Millisecond {
		t.Errorf("the denial took %v to reach the sink, want at most ~200ms", d)
	}

	t1 := time.Now()
	l.Record(record("allowed", wire.DecisionAllow))
	waitFor(t, "the allowed record", func() bool { return len(s.ids()) == 2 })
	if d := time.Since(t1); d < 800*time.Millisecond || d > 3*time.Second {
		t.Errorf("the allowed record took %v, want about the 1s batch delay", d)
	}
}

// TestTornLineIsSkipped: a crash in the middle of a write leaves the last
// line of a segment without its newline; the records before it are
// shipped, the torn one skipped and counted, and new records go to a new
// segment.
func TestTornLineIsSkipped(t *testing.T) {
	dir := t.TempDir()
	l := start(t, Config{Dir: dir}) // no sink: keep everything
	for _, r := range records("kept", 3, wire.DecisionAllow) {
		l.Record(r)
	}
	waitFor(t, "the spool", func() bool { return l.Stats().Spooled == 3 })
	l.stop()
	segs := segments(t, dir)
	if len(segs) != 1 {
		t.Fatalf("segments %v, want one", segs)
	}
	b, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	// Tear the last record: the crash came halfway through its line.
	lines := strings.SplitAfter(string(b), "\n")
	torn := strings.Join(lines[:2], "") + lines[2][:len(lines[2])/2]
	if err := os.WriteFile(segs[0], []byte(torn), 0o600); err != nil {
		t.Fatal(err)
	}

	s := &sink{}
	l2 := start(t, Config{Dir: dir, Sink: s})
	// The shipper may have sent the two already: they count either way.
	if st := l2.Stats(); uint64(st.Spooled)+st.Shipped != 2 || st.Skipped != 1 {
		t.Errorf("after the crash: stats %+v, want 2 spooled or shipped, 1 skipped", st)
	}
	l2.Record(record("new", wire.DecisionDeny))
	waitFor(t, "the records", func() bool { return len(s.ids()) == 3 })
	if got, want := s.ids(), []string{"kept-0", "kept-1", "new"}; !slices.Equal(got, want) {
		t.Errorf("delivered %q, want %q", got, want)
	}
	// Reading the torn segment again to ship it counts nothing more.
	if st := l2.Stats(); st.Skipped != 1 {
		t.Errorf("after shipping: %d lines skipped, want the 1 torn one counted once", st.Skipped)
	}
}

// TestBound: past MaxRecords the oldest records go, counted; the newest
// stay and are shipped later.
func TestBound(t *testing.T) {
	dir := t.TempDir()
	l := start(t, Config{Dir: dir, MaxRecords: 100}) // no sink: nothing ships
	all := records("r", 250, wire.DecisionAllow)
	for _, r := range all {
		l.Record(r)
		if st := l.Stats(); st.Spooled > 100 {
			t.Fatalf("spool holds %d records, more than 100", st.Spooled)
		}
	}
	waitFor(t, "the queue to drain", func() bool { return l.Stats().Queued == 0 && l.Stats().Spooled+int(l.Stats().Dropped) == 250 })
	st := l.Stats()
	if st.Spooled > 100 || st.Spooled < 90 || st.Dropped != uint64(250-st.Spooled) {
		t.Errorf("stats = %+v, want at most 100 spooled and the rest counted as dropped", st)
	}
	l.stop()

	s := &sink{}
	start(t, Config{Dir: dir, Sink: s, MaxRecords: 100})
	waitFor(t, "the kept records", func() bool { return len(s.ids()) == st.Spooled })
	got := s.ids()
	if got[len(got)-1] != "r-249" || got[0] != fmt.Sprintf("r-%d", 250-st.Spooled) {
		t.Errorf("kept %s..%s, want the newest %d", got[0], got[len(got)-1], st.Spooled)
	}
}

// TestInvalidRecordIsLost: a record the coordinator would refuse never
// enters the spool, where it would block the records behind it.
func TestInvalidRecordIsLost(t *testing.T) {
	s := &sink{}
	l := start(t, Config{Dir: t.TempDir(), Sink: s})
	bad := record("", wire.DecisionDeny)
	l.Record(bad)
	l.Record(record("good", wire.DecisionDeny))
	waitFor(t, "the good record", func() bool { return len(s.ids()) == 1 })
	if st := l.Stats(); st.Lost != 1 {
		t.Errorf("Lost = %d, want 1", st.Lost)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{{}, {Dir: "x", BatchDelay: -1}, {Dir: "x", MaxRecords: -1}} {
		if err := c.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", c)
		}
	}
}
