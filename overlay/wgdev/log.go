package wgdev

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/device"
)

// Rate limits for wireguard-go's messages. wireguard-go logs some events
// per packet ("Failed to send data packets", "Received invalid ..."), so
// each format string gets its own token bucket: a burst of logBurst, then
// one message per logEvery. Messages dropped are counted and reported, as
// "suppressed", on the next message of that format that passes.
const (
	logBurst   = 10
	logEvery   = time.Second
	logFormats = 256 // formats tracked apart; further ones share a bucket
)

// newLogger adapts log to wireguard-go's logger: Verbosef to Debug and
// Errorf to Error, each message attributed to component=wireguard.
// wireguard-go never logs key material (peers print as a short fragment
// of their public key).
func newLogger(log *slog.Logger) *device.Logger {
	a := &logAdapter{
		log: log.With("component", "wireguard"),
		lim: newLimiter(logBurst, logEvery, time.Now),
	}
	return &device.Logger{
		Verbosef: func(format string, args ...any) { a.logf(slog.LevelDebug, format, args...) },
		Errorf:   func(format string, args ...any) { a.logf(slog.LevelError, format, args...) },
	}
}

type logAdapter struct {
	log *slog.Logger
	lim *limiter
}

func (a *logAdapter) logf(level slog.Level, format string, args ...any) {
	ctx := context.Background()
	if !a.log.Enabled(ctx, level) {
		return // skip formatting: wireguard-go logs per packet at debug
	}
	ok, dropped := a.lim.allow(limitKey{level, format})
	if !ok {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if dropped > 0 {
		a.log.Log(ctx, level, msg, "suppressed", dropped)
		return
	}
	a.log.Log(ctx, level, msg)
}

type limitKey struct {
	level  slog.Level
	format string
}

// limiter is a token bucket per key.
type limiter struct {
	burst float64
	every time.Duration
	now   func() time.Time

	mu      sync.Mutex // guards buckets and the buckets they point to
	buckets map[limitKey]*bucket
}

type bucket struct {
	tokens  float64
	last    time.Time // when tokens was computed
	dropped int       // since the last message allowed
}

func newLimiter(burst int, every time.Duration, now func() time.Time) *limiter {
	return &limiter{burst: float64(burst), every: every, now: now, buckets: map[limitKey]*bucket{}}
}

// allow reports whether a message with key may be logged now and, if so,
// how many with the same key were dropped since the last one allowed.
func (l *limiter) allow(key limitKey) (ok bool, dropped int) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, found := l.buckets[key]
	if !found {
		if len(l.buckets) >= logFormats {
			key = limitKey{level: key.level}
			b = l.buckets[key]
		}
		if b == nil {
			b = &bucket{tokens: l.burst, last: now}
			l.buckets[key] = b
		}
	}
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = min(l.burst, b.tokens+float64(elapsed)/float64(l.every))
		b.last = now
	}
	if b.tokens < 1 {
		b.dropped++
		return false, 0
	}
	b.tokens--
	dropped, b.dropped = b.dropped, 0
	return true, dropped
}
