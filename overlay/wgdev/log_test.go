package wgdev

import (
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLimiter(3, time.Second, func() time.Time { return now })
	a, b := limitKey{slog.LevelError, "a %v"}, limitKey{slog.LevelError, "b %v"}

	type step struct {
		advance     time.Duration
		key         limitKey
		ok          bool
		wantDropped int
	}
	steps := []step{
		{0, a, true, 0}, {0, a, true, 0}, {0, a, true, 0}, // the burst
		{0, a, false, 0}, {0, a, false, 0},
		{0, b, true, 0}, // another format has its own bucket
		{500 * time.Millisecond, a, false, 0},
		{500 * time.Millisecond, a, true, 3}, // one token back; three dropped meanwhile
		{0, a, false, 0},
		{time.Hour, a, true, 1}, // refills to the burst, no more
		{0, a, true, 0}, {0, a, true, 0}, {0, a, false, 0},
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		ok, dropped := l.allow(s.key)
		if ok != s.ok || dropped != s.wantDropped {
			t.Fatalf("step %d: allow(%q) = %v, %d; want %v, %d", i, s.key.format, ok, dropped, s.ok, s.wantDropped)
		}
	}
}

func TestLimiterBoundsFormats(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newLimiter(1, time.Second, func() time.Time { return now })
	for i := range 10 * logFormats {
		l.allow(limitKey{slog.LevelDebug, strings.Repeat("x", i)})
	}
	if n := len(l.buckets); n > logFormats+1 {
		t.Errorf("%d buckets after %d formats, want at most %d", n, 10*logFormats, logFormats+1)
	}
}

// counted counts how often it is formatted.
type counted struct{ n *atomic.Int32 }

func (c counted) String() string { c.n.Add(1); return "peer(abcd…wxyz)" }

func TestLoggerAdapter(t *testing.T) {
	buf := new(syncBuffer)
	log := newLogger(slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelInfo})))

	var n atomic.Int32
	log.Verbosef("%v - Sending keepalive packet", counted{&n})
	if n.Load() != 0 || buf.String() != "" {
		t.Errorf("a debug message with debug off was formatted %d times and logged %q; want neither", n.Load(), buf.String())
	}

	for range logBurst + 5 {
		log.Errorf("%v - Failed to send data packets: %v", counted{&n}, "boom")
	}
	out := buf.String()
	if got := strings.Count(out, "Failed to send data packets"); got != logBurst {
		t.Errorf("%d of %d chatty errors logged, want %d:\n%s", got, logBurst+5, logBurst, out)
	}
	for _, want := range []string{"level=ERROR", "component=wireguard", `msg="peer(abcd…wxyz) - Failed to send data packets: boom"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log %q does not contain %q", out, want)
		}
	}
	if n.Load() != logBurst {
		t.Errorf("arguments formatted %d times, want %d (only for messages logged)", n.Load(), logBurst)
	}
}
