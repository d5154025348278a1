package proxy

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// errEvery is the shortest interval between two lines of one kind of per-flow error.
const errEvery = 5 * time.Second

// errLogs are the per-flow errors, one limiter per kind. With debug logging on, every flow's
// lines are logged, its errors too; otherwise an error is a warning, one per errEvery per kind.
type errLogs struct {
	dial      limited // the Dialer failed
	handshake limited // a client broke the protocol, timed out or failed authentication
	udp       limited // a UDP association's socket, datagram or destination failed
	http      limited // an HTTP request could not be forwarded
}

// limited lets one line through per errEvery and counts the ones it holds back. The zero value is
// ready; safe for concurrent use.
type limited struct {
	next       atomic.Int64 // Unix ns before which lines are held back
	suppressed atomic.Uint64
}

// warn logs msg at debug level if that is on; else at warning level unless a line of l was
// logged less than errEvery ago.
func (l *limited) warn(log *slog.Logger, msg string, args ...any) {
	if log.Enabled(context.Background(), slog.LevelDebug) {
		log.Debug(msg, args...)
		return
	}
	if !log.Enabled(context.Background(), slog.LevelWarn) {
		return
	}
	now := time.Now().UnixNano()
	next := l.next.Load()
	if now < next || !l.next.CompareAndSwap(next, now+int64(errEvery)) {
		l.suppressed.Add(1)
		return
	}
	if n := l.suppressed.Swap(0); n > 0 {
		args = append(args, "suppressed", n)
	}
	log.Warn(msg, args...)
}
