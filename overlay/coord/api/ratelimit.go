package api

import (
	"net/netip"
	"sync"
	"time"
)

// rateLimiter is a token bucket per source.
type rateLimiter struct {
	rate       float64 // tokens per second
	burst      float64
	maxSources int

	// mu guards buckets and swept.
	mu      sync.Mutex
	buckets map[netip.Prefix]*bucket
	swept   time.Time // the last sweep, done at most once a second
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newRateLimiter(rate float64, burst, maxSources int) *rateLimiter {
	return &rateLimiter{rate: rate, burst: float64(burst), maxSources: maxSources, buckets: make(map[netip.Prefix]*bucket)}
}

// allow takes a token from src's bucket, or returns how long until one
// is there.
func (l *rateLimiter) allow(src netip.Prefix, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[src]
	if b == nil {
		if len(l.buckets) >= l.maxSources && now.Sub(l.swept) >= time.Second {
			l.swept = now
			l.sweep(now)
		}
		if len(l.buckets) >= l.maxSources {
			return false, time.Second
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[src] = b
	}
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(l.burst, b.tokens+d.Seconds()*l.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

// sweep forgets the sources whose buckets have refilled: to them, being
// forgotten is the same as being full. Call with mu held.
func (l *rateLimiter) sweep(now time.Time) {
	for src, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, src)
		}
	}
}
