// Package procs fits the Go scheduler's parallelism (GOMAXPROCS) to a
// tunnel process's own load: one P while one is plenty, every CPU while
// goroutines queue for the one.
//
// A packet crosses several goroutines in a tunnel process (wireguard-go's
// reader, crypto worker and sequential sender; gVisor's TCP processor;
// the flow's copy loop). With more than one P, each handoff to a parked
// goroutine makes the runtime wake an idle thread to look for work, and
// the thread parks again a few microseconds later: two futex calls and
// often a wake-up of an idle CPU, which on a virtual machine means an
// interrupt through the host. On the development VM, for 1-byte round
// trips through Warren, that was about a third of each process's CPU
// and of the round-trip time: with one P the direct path's p50 went from
// 303 to 206 µs, and the connector's CPU per round trip from 178 to 110
// µs.
//
// More Ps pay when goroutines wait for the one: bulk traffic (wireguard-go
// encrypts on several at once, and the copy loops overlap with it). The
// runtime measures how long runnable goroutines wait for a P
// (runtime/metrics /sched/latencies:seconds). Run raises GOMAXPROCS to
// the maximum when, with one P, a fifth of those waits take longer than
// 50 µs while the process keeps 0.4 of a CPU busy, or when it keeps
// nearly a whole CPU busy. (5,000 round trips a second through the
// connector, as heavy a load, kept 99 % of its waits under 50 µs.) It
// lowers GOMAXPROCS again after half a second in which the load was
// light, or under a CPU with almost no long waits.
//
// It imports no other Warren package.
package procs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"
)

// The governor's thresholds. Loads are CPUs kept busy by this process
// (user and system time over wall time); a thread in a system call holds
// no P, so a load can pass 1 with one P.
const (
	// fullLoad raises parallelism whatever the waits: the one P is
	// nearly always busy.
	fullLoad = 0.9
	// queuedLoad raises it when, besides, goroutines queue: at least
	// queuedShare of the waits took slowWait or longer, out of at least
	// minWaits waits measured in the sample.
	queuedLoad  = 0.4
	queuedShare = 0.2
	slowWait    = 50 * time.Microsecond
	minWaits    = 10
	// Parallelism falls back to one P after downAfter of samples each
	// under lightLoad, or under fullLoad with under calmShare of the
	// waits slow: traffic that fits one P.
	lightLoad = 0.25
	calmShare = 0.05
	downAfter = 500 * time.Millisecond
	// busyEvery is the sampling period while the process is doing
	// anything; idleEvery while it is idle (under idleLoad) at one P, so
	// that an idle laptop daemon wakes four times a second, not ten. A
	// transfer that starts after idling runs that long at one P at most.
	busyEvery = 100 * time.Millisecond
	idleEvery = 250 * time.Millisecond
	idleLoad  = 0.02
)

// ErrUnsupported is returned by Run where the process's CPU time cannot
// be read; parallelism is then left as it is.
var ErrUnsupported = errors.New("reading the process's CPU time is not supported on this system")

// Config configures Run.
type Config struct {
	// Max is the parallelism under load: zero means what
	// runtime.GOMAXPROCS reports when Run starts.
	Max int
	// Logger gets a debug line at each change; nil discards.
	Logger *slog.Logger

	// Tests replace these; nil means the real process and runtime.
	measure  func() (reading, error) // CPU time and scheduling waits so far
	setProcs func(int)               // runtime.GOMAXPROCS
}

// reading is what the process has used and waited since it started.
type reading struct {
	cpu time.Duration // user and system CPU time
	// waits and slow count the scheduling waits the runtime measured,
	// and those of slowWait or longer.
	waits, slow uint64
}

// sample is the process's load over one sampling period.
type sample struct {
	load        float64 // CPUs busy
	waits, slow uint64  // scheduling waits measured, and the slow ones
}

func (s sample) slowShare() float64 { return float64(s.slow) / float64(s.waits) }

// queued reports whether goroutines queued for a P in the sample.
func (s sample) queued() bool { return s.waits >= minWaits && s.slowShare() >= queuedShare }

// calm reports whether they hardly ever did. Too few waits to judge
// counts as calm: the process did little.
func (s sample) calm() bool { return s.waits < minWaits || s.slowShare() < calmShare }

// Run governs GOMAXPROCS until ctx ends, then restores the maximum and
// returns nil. It starts at one P. With a maximum of one there is nothing
// to govern and it returns nil at once; where the process's CPU time
// cannot be read it returns ErrUnsupported without changing anything.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	measure, set := cfg.measure, cfg.setProcs
	if measure == nil {
		measure = newMeter().read
	}
	if set == nil {
		set = func(n int) { runtime.GOMAXPROCS(n) }
	}
	g := newGovernor(cfg.Max)
	if g.max <= 1 {
		return nil
	}
	last, err := measure()
	if err != nil {
		return fmt.Errorf("governing GOMAXPROCS: %w", err)
	}
	lastWall := time.Now()
	set(g.procs)
	defer set(g.max)
	log.Debug("scheduler parallelism", "procs", g.procs, "max", g.max)

	t := time.NewTimer(idleEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		r, err := measure()
		if err != nil {
			return fmt.Errorf("governing GOMAXPROCS: %w", err)
		}
		wall := time.Now()
		dt := wall.Sub(lastWall)
		s := sample{load: float64(r.cpu-last.cpu) / float64(dt), waits: r.waits - last.waits, slow: r.slow - last.slow}
		before := g.procs
		next := g.observe(s, dt)
		if g.procs != before {
			set(g.procs)
			log.Debug("scheduler parallelism", "procs", g.procs, "load", fmt.Sprintf("%.2f", s.load), "waits", s.waits, "slow", s.slow)
		}
		last, lastWall = r, wall
		t.Reset(next)
	}
}

// governor decides the parallelism from samples. It has no clock and no
// side effects, so that tests can drive it sample by sample.
type governor struct {
	max   int
	procs int           // the parallelism decided so far
	quiet time.Duration // how long, at max, the samples said one P would do
}

// newGovernor starts at one P; max <= 0 means the runtime's current
// GOMAXPROCS.
func newGovernor(max int) *governor {
	if max <= 0 {
		max = runtime.GOMAXPROCS(0)
	}
	return &governor{max: max, procs: 1}
}

// observe takes the sample s, taken over dt, and returns when to sample
// next; g.procs is then the parallelism to run with.
func (g *governor) observe(s sample, dt time.Duration) time.Duration {
	if g.procs == 1 {
		if s.load >= fullLoad || s.load >= queuedLoad && s.queued() {
			g.procs, g.quiet = g.max, 0
		}
	} else if s.load < lightLoad || s.load < fullLoad && s.calm() {
		if g.quiet += dt; g.quiet >= downAfter {
			g.procs, g.quiet = 1, 0
		}
	} else {
		g.quiet = 0
	}
	if g.procs == 1 && s.load < idleLoad {
		return idleEvery
	}
	return busyEvery
}
