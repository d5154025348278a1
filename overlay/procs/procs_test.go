package procs

import (
	"context"
	"errors"
	"math"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestGovernor(t *testing.T) {
	type step struct {
		s         sample
		dt        time.Duration
		wantProcs int
		wantNext  time.Duration
	}
	const tick = busyEvery
	load := func(l float64) sample { return sample{load: l} }
	// queued is a sample in which a third of 30 waits were slow; calm,
	// one in 100.
	queued := func(l float64) sample { return sample{load: l, waits: 30, slow: 10} }
	calm := func(l float64) sample { return sample{load: l, waits: 100, slow: 1} }
	tests := []struct {
		name  string
		steps []step
	}{
		{"idle stays at one P and samples slowly", []step{
			{load(0), idleEvery, 1, idleEvery},
			{load(0.01), idleEvery, 1, idleEvery},
		}},
		{"round trips that keep most of a CPU busy stay at one P", []step{
			{calm(0.3), tick, 1, busyEvery},
			{calm(0.89), tick, 1, busyEvery},
		}},
		{"a nearly full P raises at once", []step{
			{load(0.1), tick, 1, busyEvery},
			{load(0.9), tick, 4, busyEvery},
			{load(1.7), tick, 4, busyEvery},
		}},
		{"goroutines queueing raise", []step{
			{queued(0.39), tick, 1, busyEvery},
			{queued(0.4), tick, 4, busyEvery},
		}},
		{"too few waits to judge do not raise", []step{
			{sample{load: 0.6, waits: minWaits - 1, slow: minWaits - 1}, tick, 1, busyEvery},
		}},
		{"a busy process that queues keeps the maximum", []step{
			{load(1.2), tick, 4, busyEvery},
			{queued(0.6), 10 * downAfter, 4, busyEvery},
			{calm(0.95), 10 * downAfter, 4, busyEvery},
		}},
		{"light load for downAfter lowers", []step{
			{load(1.2), tick, 4, busyEvery},
			{queued(0.2), downAfter / 2, 4, busyEvery},
			{load(0.1), downAfter/2 - time.Millisecond, 4, busyEvery},
			{load(0), time.Millisecond, 1, idleEvery},
		}},
		{"calm for downAfter lowers", []step{
			{load(1.2), tick, 4, busyEvery},
			{calm(0.8), downAfter / 2, 4, busyEvery},
			{calm(0.7), downAfter / 2, 1, busyEvery},
		}},
		{"a busy sample restarts the quiet count", []step{
			{load(1.2), tick, 4, busyEvery},
			{calm(0.5), downAfter * 3 / 4, 4, busyEvery},
			{queued(0.5), tick, 4, busyEvery},
			{calm(0.5), downAfter * 3 / 4, 4, busyEvery},
			{calm(0.5), downAfter / 4, 1, busyEvery},
		}},
		{"back at one P it rises again", []step{
			{load(1.2), tick, 4, busyEvery},
			{load(0.1), downAfter, 1, busyEvery},
			{queued(0.5), tick, 4, busyEvery},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGovernor(4)
			for i, st := range tt.steps {
				next := g.observe(st.s, st.dt)
				if g.procs != st.wantProcs || next != st.wantNext {
					t.Fatalf("sample %d (%+v over %v): procs %d, next %v; want %d, %v", i, st.s, st.dt, g.procs, next, st.wantProcs, st.wantNext)
				}
			}
		})
	}
}

func TestCountWaits(t *testing.T) {
	us := func(n float64) float64 { return n * 1e-6 }
	h := &metrics.Float64Histogram{
		Buckets: []float64{math.Inf(-1), 0, us(10), us(49), slowWait.Seconds(), us(200), math.Inf(1)},
		Counts:  []uint64{0, 7, 3, 2, 4, 1},
	}
	waits, slow := countWaits(h)
	if waits != 17 || slow != 5 {
		t.Fatalf("countWaits: %d waits, %d slow; want 17, 5", waits, slow)
	}
}

func TestMeterReadsThisProcess(t *testing.T) {
	m := newMeter()
	before, err := m.read()
	if errors.Is(err, ErrUnsupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	// Spin until the process has used 20 ms more, handing work between
	// goroutines so that the runtime measures scheduling waits, or fail
	// after 10 s.
	deadline := time.Now().Add(10 * time.Second)
	ch := make(chan int)
	for time.Now().Before(deadline) {
		go func() {
			x := 0
			for i := range 1 << 16 {
				x += i
			}
			ch <- x
		}()
		<-ch
		now, err := m.read()
		if err != nil {
			t.Fatal(err)
		}
		if now.cpu-before.cpu >= 20*time.Millisecond && now.waits > before.waits {
			if now.slow < before.slow || now.slow > now.waits {
				t.Fatalf("slow waits went from %d to %d, with %d waits in all", before.slow, now.slow, now.waits)
			}
			return
		}
	}
	t.Fatal("CPU time or scheduling waits did not grow in 10 s of spinning")
}

// fakeProcess is a process whose load the test sets: its CPU time grows
// by load × the wall time that passed.
type fakeProcess struct {
	mu    sync.Mutex // guards the fields below
	load  float64
	cpu   time.Duration
	since time.Time
	sets  []int
	procs atomic.Int64
}

func newFakeProcess() *fakeProcess { return &fakeProcess{since: time.Now()} }

func (p *fakeProcess) measure() (reading, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	p.cpu += time.Duration(p.load * float64(now.Sub(p.since)))
	p.since = now
	return reading{cpu: p.cpu}, nil
}

func (p *fakeProcess) setLoad(load float64) {
	p.measure() // account for the time at the old load
	p.mu.Lock()
	p.load = load
	p.mu.Unlock()
}

func (p *fakeProcess) set(n int) {
	p.mu.Lock()
	p.sets = append(p.sets, n)
	p.mu.Unlock()
	p.procs.Store(int64(n))
}

func (p *fakeProcess) waitProcs(t *testing.T, want int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for p.procs.Load() != int64(want) {
		if time.Now().After(deadline) {
			t.Fatalf("GOMAXPROCS %d after %v, want %d", p.procs.Load(), within, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRunFollowsLoad(t *testing.T) {
	p := newFakeProcess()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, Config{Max: 3, measure: p.measure, setProcs: p.set}) }()

	p.waitProcs(t, 1, time.Second) // starts at one P
	p.setLoad(1)
	// The first sample comes after idleEvery: the process was idle.
	p.waitProcs(t, 3, idleEvery+time.Second)
	p.setLoad(0.3)
	p.waitProcs(t, 1, downAfter+time.Second)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	want := []int{1, 3, 1, 3} // the last one restores the maximum
	if len(p.sets) != len(want) {
		t.Fatalf("GOMAXPROCS set to %v, want %v", p.sets, want)
	}
	for i := range want {
		if p.sets[i] != want[i] {
			t.Fatalf("GOMAXPROCS set to %v, want %v", p.sets, want)
		}
	}
}

func TestRunWithOneCPUChangesNothing(t *testing.T) {
	p := newFakeProcess()
	if err := Run(context.Background(), Config{Max: 1, measure: p.measure, setProcs: p.set}); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(p.sets) != 0 {
		t.Fatalf("GOMAXPROCS set to %v, want untouched", p.sets)
	}
}

func TestRunWithoutCPUTime(t *testing.T) {
	p := newFakeProcess()
	failing := func() (reading, error) { return reading{}, ErrUnsupported }
	err := Run(context.Background(), Config{Max: 2, measure: failing, setProcs: p.set})
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("Run: %v, want ErrUnsupported", err)
	}
	if len(p.sets) != 0 {
		t.Fatalf("GOMAXPROCS set to %v, want untouched", p.sets)
	}
}
