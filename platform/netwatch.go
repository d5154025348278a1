package platform

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Debouncing of network changes (WatchNetwork).
const (
	// DefaultQuiet is how long the network must stay quiet after a change
	// before it is reported: one change of address or network comes as a
	// burst of link, address and route messages.
	DefaultQuiet = 100 * time.Millisecond
	// DefaultMaxDelay bounds how long after the first change of a burst
	// it is reported, however long the burst goes on.
	DefaultMaxDelay = time.Second
)

// WatchConfig configures WatchNetwork.
type WatchConfig struct {
	// Ignore names an interface whose changes do not count: Warren's own
	// TUN, whose addresses and routes Warren sets itself. Routes Warren
	// installed (RouteProtocol) never count either.
	Ignore string
	// Quiet and MaxDelay: zero means DefaultQuiet and DefaultMaxDelay.
	Quiet, MaxDelay time.Duration
	// Logger receives the subscription's errors. Nil discards.
	Logger *slog.Logger
}

// WatchNetwork reports changes of the host's network until ctx ends: a
// link, an address or a route that came, went or changed, on any
// interface but cfg.Ignore (Linux: rtnetlink; darwin: the routing
// socket). A burst of changes is reported once, when the network has been
// quiet for cfg.Quiet, and at most cfg.MaxDelay after its first change.
// changed receives a description of the first change of the burst; it is
// called from WatchNetwork's goroutine, one call at a time, and should
// return soon.
//
// WatchNetwork returns nil once ctx ends, having stopped everything it
// started, or at once an error wrapping ErrNotSupported where there is no
// way to watch (every system but Linux and darwin), or the error that
// kept it from subscribing. If the subscription breaks later (the kernel
// dropped messages), that counts as a change and it subscribes again.
func WatchNetwork(ctx context.Context, cfg WatchConfig, changed func(why string)) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	events := make(chan netEvent, 64)
	errc := make(chan error, 1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { errc <- subscribe(ctx, events, cfg.Logger) }()
	done := make(chan struct{})
	go func() {
		defer close(done)
		debounce(ctx, cfg, events, changed)
	}()
	err := <-errc
	cancel()
	<-done
	return err
}

// netEvent is one change the OS reported.
type netEvent struct {
	// iface names the interface it concerns; empty if it concerns none
	// (the subscription broke).
	iface string
	what  string // "address 10.1.0.3/24 added"
}

func (e netEvent) String() string {
	if e.iface == "" {
		return e.what
	}
	return e.what + " on " + e.iface
}

// debounce reads events until ctx ends and calls changed once per burst
// (see WatchNetwork), leaving out events on cfg.Ignore.
func debounce(ctx context.Context, cfg WatchConfig, events <-chan netEvent, changed func(string)) {
	quiet, maxDelay := cfg.Quiet, cfg.MaxDelay
	if quiet <= 0 {
		quiet = DefaultQuiet
	}
	if maxDelay <= 0 {
		maxDelay = DefaultMaxDelay
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var (
		first time.Time
		why   string
		n     int
	)
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-events:
			if cfg.Ignore != "" && ev.iface == cfg.Ignore {
				continue
			}
			now := time.Now()
			if n == 0 {
				first, why = now, ev.String()
			}
			n++
			timer.Reset(max(0, min(quiet, first.Add(maxDelay).Sub(now))))
		case <-timer.C:
			if n > 1 {
				why = fmt.Sprintf("%s (and %d more changes)", why, n-1)
			}
			n = 0
			changed(why)
		}
	}
}
