package coordclient

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Backoff defaults.
const (
	DefaultBackoffMin        = 500 * time.Millisecond
	DefaultBackoffMax        = 30 * time.Second
	DefaultBackoffResetAfter = time.Minute
)

// Backoff paces reconnects: the n-th consecutive failure waits a uniformly
// random time in [0, min(Max, Min·2ⁿ)] ("full jitter"), so a fleet of
// nodes does not reconnect in step after a coordinator restart.
type Backoff struct {
	// Min is the ceiling of the first wait; zero means DefaultBackoffMin.
	Min time.Duration
	// Max caps every wait; zero means DefaultBackoffMax.
	Max time.Duration
	// ResetAfter: a stream that stayed up at least this long starts the
	// next series of waits from Min again. Zero means
	// DefaultBackoffResetAfter.
	ResetAfter time.Duration
}

func (b Backoff) withDefaults() Backoff {
	if b.Min == 0 {
		b.Min = DefaultBackoffMin
	}
	if b.Max == 0 {
		b.Max = DefaultBackoffMax
	}
	if b.ResetAfter == 0 {
		b.ResetAfter = DefaultBackoffResetAfter
	}
	return b
}

// Validate checks the durations; zeros mean defaults.
func (b Backoff) Validate() error {
	if b.Min < 0 || b.Max < 0 || b.ResetAfter < 0 {
		return fmt.Errorf("backoff durations must not be negative")
	}
	d := b.withDefaults()
	if d.Min > d.Max {
		return fmt.Errorf("backoff minimum %v is above its maximum %v", d.Min, d.Max)
	}
	return nil
}

// ceiling returns the upper bound of the wait after n consecutive failures
// (n counts from 0). b must have its defaults applied.
func (b Backoff) ceiling(n int) time.Duration {
	c := b.Min
	for i := 0; i < n && c < b.Max; i++ {
		c *= 2
	}
	return min(c, b.Max)
}

// delay returns a random wait after n consecutive failures.
func (b Backoff) delay(n int) time.Duration {
	return rand.N(b.ceiling(n) + 1)
}

// failuresAfter returns the count of consecutive failures to pace the next
// attempt by, given the count so far and the stream that just ended: one
// that came up at up (zero if it never did) and stayed up ResetAfter or
// longer starts a new series.
func (b Backoff) failuresAfter(failures int, up, now time.Time) int {
	if !up.IsZero() && now.Sub(up) >= b.ResetAfter {
		return 0
	}
	return failures
}
