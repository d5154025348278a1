package flowlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrennet/warren/overlay/wire"
)

// Sink takes flow records off the connector's hands: the coordinator's
// flow report endpoint, through the node's credential.
type Sink interface {
	// ReportFlows delivers recs (at most wire.MaxFlowReport, oldest
	// first). nil means they are stored for good: the Log deletes them.
	// An error means they may or may not have been stored: the Log sends
	// them again later, with the same IDs. It must return once ctx ends.
	ReportFlows(ctx context.Context, recs []wire.FlowRecord) error
}

// Defaults for the zero values of Config.
const (
	DefaultMaxRecords  = 100_000
	DefaultBatchDelay  = time.Second
	DefaultMinBackoff  = time.Second
	DefaultMaxBackoff  = 30 * time.Second
	DefaultSendTimeout = 30 * time.Second
)

// maxQueued bounds the records waiting for the writer. It is only reached
// if the disk stalls: the writer takes the whole queue at each turn.
const maxQueued = 10_000

// Config configures a Log.
type Config struct {
	// Dir is the spool directory, created 0700 if missing; the node's
	// state directory holds it. Required.
	Dir string
	// Sink receives the records. nil keeps them in the spool only, up to
	// MaxRecords, as if the coordinator were never reachable.
	Sink Sink
	// Logger receives the Log's warnings, rate-limited. Default: discard.
	Logger *slog.Logger
	// MaxRecords bounds the spool; past it the oldest records are
	// deleted, counted and logged. Default 100,000.
	MaxRecords int
	// BatchDelay is how long an allowed flow's record may wait for others
	// to share its batch. Denials do not wait. Default 1 s.
	BatchDelay time.Duration
	// MinBackoff and MaxBackoff bound the wait after a failed send: it
	// starts at MinBackoff and doubles (±20 %) up to MaxBackoff.
	// Defaults 1 s and 30 s.
	MinBackoff, MaxBackoff time.Duration
	// SendTimeout bounds one ReportFlows call. Default 30 s.
	SendTimeout time.Duration
}

// Validate reports the first problem with c. Zero values select defaults.
func (c *Config) Validate() error {
	if c.Dir == "" {
		return errors.New("flow log: a spool directory is required")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"batch delay", c.BatchDelay}, {"minimum backoff", c.MinBackoff}, {"maximum backoff", c.MaxBackoff}, {"send timeout", c.SendTimeout}} {
		if d.v < 0 {
			return fmt.Errorf("flow log: %s is negative (%v)", d.name, d.v)
		}
	}
	if c.MaxRecords < 0 {
		return fmt.Errorf("flow log: max records is negative (%d)", c.MaxRecords)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.MaxRecords == 0 {
		c.MaxRecords = DefaultMaxRecords
	}
	if c.BatchDelay == 0 {
		c.BatchDelay = DefaultBatchDelay
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	c.MaxBackoff = max(c.MaxBackoff, c.MinBackoff)
	if c.SendTimeout == 0 {
		c.SendTimeout = DefaultSendTimeout
	}
	return c
}

// Log is a flow log: Record queues a record, Run writes the queue to the
// spool and ships the spool to the Sink.
//
// Run owns two goroutines: the writer (queue → spool, sealing segments
// for the shipper) and the shipper (spool → Sink). When Run's ctx ends,
// the shipper's send in progress is cancelled (its records stay spooled),
// the writer writes what is still queued, and Run returns. Records given
// to Record after that are lost: stop whatever records flows first.
type Log struct {
	cfg   Config
	log   *slog.Logger
	spool *spool

	// mu guards queue and urgent.
	mu     sync.Mutex
	queue  []wire.FlowRecord
	urgent bool // a denial is queued

	wake      chan struct{} // Record → writer
	toShipper chan struct{} // writer → shipper: a segment was sealed
	shipped   chan struct{} // shipper → writer: segments were deleted

	running atomic.Bool

	shippedN, lost, failures atomic.Uint64
	warnLost, warnSend       rateWarn
	warnDrop                 rateWarn
	lastDropped              uint64 // the writer's: dropped as last logged
}

// New opens the spool in cfg.Dir, with the records a previous run left
// there, and returns a Log to Run.
func New(cfg Config) (*Log, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	segMax := min(wire.MaxFlowReport, max(1, cfg.MaxRecords/10))
	sp, err := openSpool(cfg.Dir, cfg.MaxRecords, segMax)
	if err != nil {
		return nil, err
	}
	l := &Log{
		cfg:       cfg,
		log:       cfg.Logger,
		spool:     sp,
		wake:      make(chan struct{}, 1),
		toShipper: make(chan struct{}, 1),
		shipped:   make(chan struct{}, 1),
	}
	if total, _, skipped := sp.counts(); total > 0 || skipped > 0 {
		l.log.Info("flow records left from before", "records", total, "torn_or_corrupt_lines", skipped)
	}
	return l, nil
}

// Record queues rec. It never blocks: a record the coordinator would
// refuse (wire.FlowReport.Validate), or one that finds the queue full, is
// dropped, counted in Stats.Lost and logged. A denial is written and sent
// at once. Safe for concurrent use.
func (l *Log) Record(rec wire.FlowRecord) {
	if err := (wire.FlowReport{Records: []wire.FlowRecord{rec}}).Validate(); err != nil {
		l.lost.Add(1)
		l.warnLost.warn(l.log, "dropping an invalid flow record", "id", rec.ID, "err", err)
		return
	}
	l.mu.Lock()
	if len(l.queue) >= maxQueued {
		l.mu.Unlock()
		l.lost.Add(1)
		l.warnLost.warn(l.log, "dropping a flow record: the spool writer is behind", "queued", maxQueued)
		return
	}
	l.queue = append(l.queue, rec)
	if rec.Decision == wire.DecisionDeny {
		l.urgent = true
	}
	l.mu.Unlock()
	kick(l.wake)
}

// Run writes and ships records until ctx ends, then writes what is still
// queued and returns nil. It may be called once.
func (l *Log) Run(ctx context.Context) error {
	if !l.running.CompareAndSwap(false, true) {
		return errors.New("flow log: Run called twice")
	}
	shipCtx, stopShipping := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if l.cfg.Sink != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.shipLoop(shipCtx)
		}()
	} else {
		l.log.Warn("no flow sink: flow records are kept in the state directory and not sent", "dir", l.cfg.Dir)
	}
	l.writeLoop(ctx)
	stopShipping()
	wg.Wait()
	return nil
}

// Stats is a snapshot of a Log's counters.
type Stats struct {
	Queued   int    // records waiting for the writer
	Spooled  int    // records in the spool, not yet shipped
	Shipped  uint64 // records the Sink took
	Dropped  uint64 // oldest records deleted at MaxRecords
	Lost     uint64 // records dropped before the spool: invalid, queue full, write errors
	Skipped  uint64 // torn or corrupt spool lines skipped
	Failures uint64 // failed sends
}

// Stats returns the Log's counters.
func (l *Log) Stats() Stats {
	l.mu.Lock()
	queued := len(l.queue)
	l.mu.Unlock()
	total, dropped, skipped := l.spool.counts()
	return Stats{
		Queued:   queued,
		Spooled:  total,
		Shipped:  l.shippedN.Load(),
		Dropped:  dropped,
		Lost:     l.lost.Load(),
		Skipped:  skipped,
		Failures: l.failures.Load(),
	}
}

// takeQueue empties the queue.
func (l *Log) takeQueue() (recs []wire.FlowRecord, urgent bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	recs, urgent = l.queue, l.urgent
	l.queue, l.urgent = nil, false
	return recs, urgent
}

// writeLoop is the writer: it appends what Record queued to the open
// segment, and seals that segment for the shipper once it is due (a
// denial in it, or its first record BatchDelay old) and the shipper has
// nothing older waiting: during an outage records thus gather in
// segments as large as a report instead of in one file per second.
func (l *Log) writeLoop(ctx context.Context) {
	var due time.Time // when the open segment is to be sealed; zero: it is empty
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		recs, urgent := l.takeQueue()
		l.write(recs)
		now := time.Now()
		switch {
		case l.spool.openCount() == 0:
			due = time.Time{}
		case urgent:
			due = now
		case due.IsZero():
			due = now.Add(l.cfg.BatchDelay)
		}
		if l.cfg.Sink != nil && !due.IsZero() && !now.Before(due) && !l.spool.pending() {
			l.spool.seal()
			due = time.Time{}
		}
		var tick <-chan time.Time
		if l.spool.pending() {
			kick(l.toShipper)
		} else if !due.IsZero() && l.cfg.Sink != nil {
			timer.Reset(time.Until(due))
			tick = timer.C
		}
		select {
		case <-ctx.Done():
			recs, _ := l.takeQueue()
			l.write(recs)
			l.spool.seal()
			return
		case <-l.wake:
		case <-l.shipped:
		case <-tick:
		}
		timer.Stop()
	}
}

// write appends recs to the spool, counting what it could not write, and
// logs records the bound deleted.
func (l *Log) write(recs []wire.FlowRecord) {
	if len(recs) == 0 {
		return
	}
	n, err := l.spool.append(recs)
	if err != nil {
		l.lost.Add(uint64(len(recs) - n))
		l.warnLost.warn(l.log, "losing flow records: the spool cannot be written", "records", len(recs)-n, "err", err)
		l.spool.seal() // start a new segment after whatever went wrong
	}
	if _, dropped, _ := l.spool.counts(); dropped > l.lastDropped {
		l.warnDrop.warn(l.log, "the flow spool is full: dropped the oldest records", "dropped", dropped-l.lastDropped, "dropped_total", dropped, "max_records", l.cfg.MaxRecords)
		l.lastDropped = dropped
	}
}

// shipLoop is the shipper: it sends the oldest sealed segments, deleting
// them once the Sink took them, and backs off after a failure.
func (l *Log) shipLoop(ctx context.Context) {
	var backoff time.Duration
	for {
		segs := l.spool.take(wire.MaxFlowReport)
		if len(segs) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-l.toShipper:
				continue
			}
		}
		recs, err := l.spool.read(segs)
		if errors.Is(err, os.ErrNotExist) {
			l.spool.remove(segs) // deleted behind our back: nothing to send
			continue
		}
		if err == nil {
			err = l.send(ctx, recs)
		}
		if err != nil {
			l.spool.release(segs)
			if ctx.Err() != nil {
				return
			}
			l.failures.Add(1)
			backoff = min(max(2*backoff, l.cfg.MinBackoff), l.cfg.MaxBackoff)
			l.warnSend.warn(l.log, "sending flow records", "records", len(recs), "retry_in", backoff, "err", err)
			t := time.NewTimer(jitter(backoff))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		l.shippedN.Add(uint64(len(recs)))
		l.spool.remove(segs)
		backoff = 0
		kick(l.shipped)
	}
}

// send delivers recs in reports of at most wire.MaxFlowReport.
func (l *Log) send(ctx context.Context, recs []wire.FlowRecord) error {
	for len(recs) > 0 {
		n := min(len(recs), wire.MaxFlowReport)
		sctx, cancel := context.WithTimeout(ctx, l.cfg.SendTimeout)
		err := l.cfg.Sink.ReportFlows(sctx, recs[:n])
		cancel()
		if err != nil {
			return err
		}
		recs = recs[n:]
	}
	return nil
}

// jitter spreads d by ±20 %.
func jitter(d time.Duration) time.Duration {
	return d - d/5 + rand.N(2*d/5+1)
}

// kick wakes the goroutine waiting on ch, without blocking.
func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// rateWarn logs a warning at most once per rateWarnEvery, counting the
// ones it held back in the next.
type rateWarn struct {
	mu         sync.Mutex // guards next and suppressed
	next       time.Time
	suppressed int
}

const rateWarnEvery = 10 * time.Second

func (r *rateWarn) warn(log *slog.Logger, msg string, args ...any) {
	r.mu.Lock()
	now := time.Now()
	if now.Before(r.next) {
		r.suppressed++
		r.mu.Unlock()
		return
	}
	r.next = now.Add(rateWarnEvery)
	n := r.suppressed
	r.suppressed = 0
	r.mu.Unlock()
	if n > 0 {
		args = append(args, "suppressed", n)
	}
	log.Warn(msg, args...)
}
