package api

import (
	"net/netip"
	"testing"
	"time"
)

func TestSourceOf(t *testing.T) {
	tests := []struct {
		remote, want string
	}{
		{"192.0.2.7:443", "192.0.2.7/32"},
		{"[::ffff:192.0.2.7]:443", "192.0.2.7/32"},
		{"[2001:db8:1:2:aaaa::1]:443", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff:ffff:ffff:ffff]:1", "2001:db8:1:2::/64"},
		{"[fe80::1%eth0]:443", "fe80::/64"},
	}
	for _, tt := range tests {
		if got := sourceOf(tt.remote); got.String() != tt.want {
			t.Errorf("sourceOf(%q) = %v, want %s", tt.remote, got, tt.want)
		}
	}
}

// TestRateLimiter: a burst, then the rate; one IPv6 /64 is one source;
// the table of sources is bounded and forgets the refilled first.
func TestRateLimiter(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	src := func(remote string) netip.Prefix { return sourceOf(remote) }
	l := newRateLimiter(2, 3, 2)
	a, sameNet := src("[2001:db8::1]:1"), src("[2001:db8::ffff]:2")
	for i := range 3 {
		if ok, _ := l.allow(a, t0); !ok {
			t.Fatalf("request %d within the burst refused", i+1)
		}
	}
	ok, wait := l.allow(sameNet, t0)
	if ok || wait != 500*time.Millisecond {
		t.Errorf("4th request from the same /64 = %v, wait %v; want refused, wait 500ms", ok, wait)
	}
	if ok, _ := l.allow(a, t0.Add(500*time.Millisecond)); !ok {
		t.Error("request after the refill interval refused")
	}
	b := src("192.0.2.1:1")
	for range 3 {
		if ok, _ := l.allow(b, t0); !ok {
			t.Error("another source's burst refused")
		}
	}
	// The table is full (two sources) and nobody has refilled: a third
	// source waits.
	c := src("192.0.2.2:1")
	if ok, _ := l.allow(c, t0.Add(600*time.Millisecond)); ok {
		t.Error("third source admitted while the table was full of unrefilled sources")
	}
	// Later everyone has refilled: the sweep makes room.
	if ok, _ := l.allow(c, t0.Add(10*time.Second)); !ok {
		t.Error("third source refused after the others refilled")
	}
}
