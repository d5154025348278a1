package client

import (
	"testing"
	"time"
)

func TestRenewAt(t *testing.T) {
	got := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		validBefore time.Time
		want        time.Time
	}{
		{got.Add(time.Hour), got.Add(40 * time.Minute)},
		{got.Add(3 * time.Second), got.Add(2 * time.Second)},
		// A certificate already past (a clock far off the
		// coordinator's), or about to be: not sooner than a second.
		{got.Add(-time.Hour), got.Add(time.Second)},
		{got.Add(300 * time.Millisecond), got.Add(time.Second)},
	}
	for _, tt := range tests {
		if r := renewAt(got, tt.validBefore); !r.Equal(tt.want) {
			t.Errorf("renewAt(valid until %v) = %v, want %v", tt.validBefore.Sub(got), r.Sub(got), tt.want.Sub(got))
		}
	}
	for _, tt := range []struct{ validity, want time.Duration }{
		{time.Hour, time.Minute}, {5 * time.Minute, 30 * time.Second}, {3 * time.Second, time.Second},
	} {
		if r := retryAfter(tt.validity); r != tt.want {
			t.Errorf("retryAfter(%v) = %v, want %v", tt.validity, r, tt.want)
		}
	}
}
