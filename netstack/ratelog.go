package netstack

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// logEvery is the shortest interval between two lines of one rate-limited
// message.
const logEvery = 5 * time.Second

// rateLimited logs one message at most once per logEvery and reports how
// many it suppressed meanwhile. The zero value is ready; safe for
// concurrent use.
type rateLimited struct {
	next       atomic.Int64 // Unix ns before which lines are suppressed
	suppressed atomic.Uint64
}

func (r *rateLimited) log(l *slog.Logger, level slog.Level, msg string, args ...any) {
	if !l.Enabled(context.Background(), level) {
		return
	}
	now := time.Now().UnixNano()
	next := r.next.Load()
	if now < next || !r.next.CompareAndSwap(next, now+int64(logEvery)) {
		r.suppressed.Add(1)
		return
	}
	if n := r.suppressed.Swap(0); n > 0 {
		args = append(args, "suppressed", n)
	}
	l.Log(context.Background(), level, msg, args...)
}
