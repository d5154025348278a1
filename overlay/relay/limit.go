package relay

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// tokenBucket meters a rate. It is not safe for concurrent use: each
// bucket has one owner.
type tokenBucket struct {
	tokens float64
	last   time.Time
}

// take reports whether n units fit in a bucket refilled at rate units per
// second up to burst, and takes them if so. A clock that steps back
// restarts the refill from now.
func (b *tokenBucket) take(now time.Time, rate, burst, n float64) bool {
	switch el := now.Sub(b.last); {
	case b.last.IsZero():
		b.tokens = burst
	case el > 0:
		b.tokens = min(burst, b.tokens+el.Seconds()*rate)
	}
	b.last = now
	if b.tokens < n {
		return false
	}
	b.tokens -= n
	return true
}

// logLimiter logs each distinct message at most once per interval and
// says how many it held back meanwhile. It is how per-packet events get
// logged.
type logLimiter struct {
	log   *slog.Logger
	every time.Duration

	mu   sync.Mutex // guards msgs; never held while logging
	msgs map[string]*limitedMsg
}

type limitedMsg struct {
	last       time.Time
	suppressed int
}

// maxLimitedMsgs bounds the messages a logLimiter remembers; messages are
// constant strings, so this is never reached in practice.
const maxLimitedMsgs = 256

func newLogLimiter(log *slog.Logger, every time.Duration) *logLimiter {
	return &logLimiter{log: log, every: every, msgs: map[string]*limitedMsg{}}
}

func (l *logLimiter) logf(level slog.Level, msg string, args ...any) {
	if !l.log.Enabled(context.Background(), level) {
		return
	}
	now := time.Now()
	l.mu.Lock()
	m := l.msgs[msg]
	if m == nil {
		if len(l.msgs) >= maxLimitedMsgs {
			l.mu.Unlock()
			return
		}
		m = &limitedMsg{}
		l.msgs[msg] = m
	}
	if !m.last.IsZero() && now.Sub(m.last) < l.every {
		m.suppressed++
		l.mu.Unlock()
		return
	}
	held := m.suppressed
	m.last, m.suppressed = now, 0
	l.mu.Unlock()
	if held > 0 {
		args = append(args, "suppressed", held)
	}
	l.log.Log(context.Background(), level, msg, args...)
}
