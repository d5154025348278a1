package coordclient

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

func TestBackoffCeiling(t *testing.T) {
	b := Backoff{Min: 500 * time.Millisecond, Max: 30 * time.Second}.withDefaults()
	for _, tc := range []struct {
		n    int
		want time.Duration
	}{
		{0, 500 * time.Millisecond},
		{1, time.Second},
		{2, 2 * time.Second},
		{5, 16 * time.Second},
		{6, 30 * time.Second},
		{1000, 30 * time.Second},
	} {
		if got := b.ceiling(tc.n); got != tc.want {
			t.Errorf("ceiling(%d) = %v, want %v", tc.n, got, tc.want)
		}
	}
}

func TestBackoffDelayIsFullJitter(t *testing.T) {
	b := Backoff{}.withDefaults()
	if b.Min != DefaultBackoffMin || b.Max != DefaultBackoffMax || b.ResetAfter != DefaultBackoffResetAfter {
		t.Fatalf("defaults = %+v", b)
	}
	for n := range 8 {
		ceil := b.ceiling(n)
		var lo, hi bool
		for range 2000 {
			d := b.delay(n)
			if d < 0 || d > ceil {
				t.Fatalf("delay(%d) = %v, outside [0, %v]", n, d, ceil)
			}
			lo = lo || d < ceil/4
			hi = hi || d > ceil*3/4
		}
		if !lo || !hi {
			t.Errorf("delay(%d) does not spread over [0, %v]", n, ceil)
		}
	}
}

func TestBackoffResetsAfterAStableStream(t *testing.T) {
	b := Backoff{ResetAfter: time.Minute}.withDefaults()
	now := time.Unix(5000, 0)
	for _, tc := range []struct {
		name     string
		up       time.Time
		failures int
		want     int
	}{
		{"never connected", time.Time{}, 7, 7},
		{"short-lived stream", now.Add(-59 * time.Second), 7, 7},
		{"stable stream", now.Add(-time.Minute), 7, 0},
	} {
		if got := b.failuresAfter(tc.failures, tc.up, now); got != tc.want {
			t.Errorf("%s: failuresAfter(%d) = %d, want %d", tc.name, tc.failures, got, tc.want)
		}
	}
}

func TestRateLimiter(t *testing.T) {
	r := &rateLimiter{every: time.Minute}
	t0 := time.Unix(1000, 0)
	steps := []struct {
		at         time.Duration
		msg        string
		ok         bool
		suppressed int
	}{
		{0, "a", true, 0},
		{time.Second, "a", false, 0},
		{2 * time.Second, "a", false, 0},
		{3 * time.Second, "b", true, 2}, // a new message goes through at once
		{4 * time.Second, "b", false, 0},
		{64 * time.Second, "b", true, 1}, // and a repeat once a minute
	}
	for i, s := range steps {
		ok, n := r.allow(t0.Add(s.at), s.msg)
		if ok != s.ok || n != s.suppressed {
			t.Errorf("step %d: allow = %v, %d; want %v, %d", i, ok, n, s.ok, s.suppressed)
		}
	}
}

func TestCause(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, "connection refused"},
		{&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.EHOSTUNREACH)}, "no route to host"},
		{&net.DNSError{Err: "no such host", Name: "coord.example", IsNotFound: true}, "no such host coord.example"},
		{&net.DNSError{Err: "server misbehaving", Name: "coord.example"}, "looking up coord.example: server misbehaving"},
		{&net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}, "timed out"},
		{fmt.Errorf("tls: %w", errors.New("first record does not look like a TLS handshake")), "tls: first record does not look like a TLS handshake"},
	} {
		if got := cause(tc.err); got != tc.want {
			t.Errorf("cause(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
