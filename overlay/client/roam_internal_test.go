package client

import (
	"context"
	"testing"
	"time"
)

// TestWatchFreeze feeds the freeze detector ticks read at chosen times and
// checks which gaps it reports.
func TestWatchFreeze(t *testing.T) {
	base := time.Now()
	for _, tt := range []struct {
		name  string
		times []time.Time // now's readings: the start, then one per tick
		want  []time.Duration
	}{
		{"steady ticks", []time.Time{base, base.Add(time.Second), base.Add(2 * time.Second), base.Add(3 * time.Second)}, nil},
		{"a late tick under load", []time.Time{base, base.Add(2500 * time.Millisecond)}, nil},
		{"stopped two minutes", []time.Time{base, base.Add(time.Second), base.Add(121 * time.Second), base.Add(122 * time.Second)}, []time.Duration{120 * time.Second}},
		// Readings of the wall clock alone: it runs on while the machine
		// sleeps.
		{"the machine slept", []time.Time{base.Round(0), base.Round(0).Add(time.Hour)}, []time.Duration{time.Hour}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			ticks := make(chan time.Time)
			i := 0
			now := func() time.Time { r := tt.times[i]; i++; return r }
			var got []time.Duration
			done := make(chan struct{})
			go func() {
				defer close(done)
				watchFreeze(ctx, ticks, now, freezeGap, func(d time.Duration) { got = append(got, d) })
			}()
			for range tt.times[1:] {
				ticks <- time.Time{}
			}
			cancel()
			<-done
			if len(got) != len(tt.want) {
				t.Fatalf("reported %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("reported %v, want %v", got, tt.want)
				}
			}
		})
	}
}
