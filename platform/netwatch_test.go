package platform

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestDebounce feeds debounce events as the OS would send them and checks
// what it reports, and when.
func TestDebounce(t *testing.T) {
	const quiet, maxDelay = 100 * time.Millisecond, 300 * time.Millisecond
	eth0 := func(what string) netEvent { return netEvent{iface: "eth0", what: what} }
	tun := func(what string) netEvent { return netEvent{iface: "warren0", what: what} }
	for _, tt := range []struct {
		name string
		// events are sent every gap.
		events []netEvent
		gap    time.Duration
		want   []string
		// storm: compare only how many events the reports count, and
		// that the first came while events still arrived.
		storm bool
	}{
		{
			name:   "one change",
			events: []netEvent{eth0("address 10.1.0.3/24 added")},
			want:   []string{"address 10.1.0.3/24 added on eth0"},
		},
		{
			name:   "a burst is one change",
			events: []netEvent{eth0("address 10.1.0.2/24 removed"), eth0("route to default removed"), eth0("address 10.1.0.3/24 added"), eth0("route to default added")},
			gap:    10 * time.Millisecond,
			want:   []string{"address 10.1.0.2/24 removed on eth0 (and 3 more changes)"},
		},
		{
			name:   "the tunnel's own changes do not count",
			events: []netEvent{tun("address 100.96.0.2/32 added"), tun("link up"), tun("route to 192.168.0.0/24 added")},
		},
		{
			name:   "among others they are left out",
			events: []netEvent{tun("link up"), eth0("link down"), tun("address 100.96.0.2/32 added")},
			want:   []string{"link down on eth0"},
		},
		{
			name:   "not tied to an interface",
			events: []netEvent{{what: "the network watch broke (overflow)"}},
			want:   []string{"the network watch broke (overflow)"},
		},
		{
			// Changes every 20 ms never leave the network quiet for
			// 100 ms: reported after maxDelay all the same, then again.
			name:   "a storm is reported at most every maxDelay",
			events: repeat(eth0("link changed"), 30),
			gap:    20 * time.Millisecond,
			want:   []string{"link changed on eth0 (and 14 more changes)", "link changed on eth0 (and 14 more changes)"},
			storm:  true,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			events := make(chan netEvent)
			var (
				mu  sync.Mutex
				got []string
				at  []time.Duration
			)
			reported := make(chan struct{}, 16)
			start := time.Now()
			done := make(chan struct{})
			go func() {
				defer close(done)
				debounce(ctx, WatchConfig{Ignore: "warren0", Quiet: quiet, MaxDelay: maxDelay}, events, func(why string) {
					mu.Lock()
					got, at = append(got, why), append(at, time.Since(start))
					mu.Unlock()
					reported <- struct{}{}
				})
			}()
			pace := time.NewTicker(max(tt.gap, time.Millisecond))
			for _, ev := range tt.events {
				events <- ev
				<-pace.C
			}
			pace.Stop()
			sent := time.Since(start)
			// Each report comes at most maxDelay after the events that
			// make it: once none came for longer, there are no more.
			for more := true; more; {
				select {
				case <-reported:
				case <-time.After(maxDelay + 200*time.Millisecond):
					more = false
				}
			}
			cancel()
			<-done
			mu.Lock()
			defer mu.Unlock()
			if tt.storm {
				n := 0
				for _, g := range got {
					n++
					var more int
					if _, rest, ok := strings.Cut(g, "(and "); ok {
						fmt.Sscanf(rest, "%d", &more)
					}
					n += more
				}
				if n != len(tt.events) || len(at) == 0 || at[0] > sent {
					t.Errorf("reported %q at %v for %d events sent over %v, want them all counted and the first reported before the storm ended", got, at, len(tt.events), sent)
				}
				return
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("reported %q, want %q", got, tt.want)
			}
			for i, d := range at {
				if i == 0 && d < quiet {
					t.Errorf("reported after %v, before the network was quiet for %v", d, quiet)
				}
			}
		})
	}
}

func repeat(ev netEvent, n int) []netEvent {
	out := make([]netEvent, n)
	for i := range out {
		out[i] = ev
	}
	return out
}

// TestWatchNetworkStops: WatchNetwork returns once its context ends, or
// at once where it cannot watch.
func TestWatchNetworkStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- WatchNetwork(ctx, WatchConfig{}, func(string) {}) }()
	select {
	case err := <-errc:
		// Not supported here, or no rtnetlink (a sandbox): said at once.
		if err == nil {
			t.Fatal("WatchNetwork returned nil before its context ended")
		}
		t.Logf("cannot watch here: %v", err)
		cancel()
		return
	case <-time.After(100 * time.Millisecond):
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("WatchNetwork after its context ended: %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("WatchNetwork still running 5 s after its context ended")
	}
}
