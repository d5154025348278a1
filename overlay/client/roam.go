package client

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Following the network. When the laptop's network changes under the
// tunnel (another address, another network, a NAT that rebound) or the
// daemon wakes from a freeze (a suspend, SIGSTOP), nothing on the wire
// says so soon: the relay keeps sending to the old address until the next
// HELLO, direct paths lead nowhere until they time out. So the engine
// reacts to each such change at once (roam).
const (
	// freezeTick is how often the freeze detector looks at the clocks;
	// a tick that comes freezeGap late or more means the process (or the
	// machine) did not run meanwhile.
	freezeTick = time.Second
	freezeGap  = 3 * time.Second
	// staleSession: after a change, peers whose last handshake is older
	// than this (WireGuard's REKEY_AFTER_TIME) handshake at once.
	staleSession = 2 * time.Minute
)

// followNetwork reacts to the session's network changes until ctx ends:
// those Config.WatchNetwork reports, and freezes. It closes s.followed
// when it returns, after the goroutines it started have.
func (e *Engine) followNetwork(ctx context.Context, s *session) {
	defer close(s.followed)
	changes := make(chan string, 1)
	notify := func(why string) {
		select {
		case changes <- why:
		default: // one is pending; it covers this one
		}
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	if e.cfg.WatchNetwork != nil {
		wg.Go(func() {
			if err := e.cfg.WatchNetwork(ctx, s.iface, notify); err != nil && ctx.Err() == nil {
				e.log.Warn("not following the network's changes; the relay and direct paths catch up at their next keepalive", "err", err)
			}
		})
	}
	wg.Go(func() {
		tick := time.NewTicker(freezeTick)
		defer tick.Stop()
		watchFreeze(ctx, tick.C, time.Now, freezeGap, func(gap time.Duration) {
			notify(fmt.Sprintf("the daemon did not run for %v (suspended or stopped)", gap.Round(time.Second)))
		})
	})
	for {
		select {
		case <-ctx.Done():
			return
		case why := <-changes:
			e.roam(ctx, s, why)
		}
	}
}

// roam makes the session follow a change of the network: the Bind
// registers again with the relay at once and re-checks its direct paths
// (relay.Bind.NetworkChanged); WireGuard renews sessions that aged
// meanwhile now rather than at the next datagram; a control session
// waiting to reconnect tries at once (a stream that died while the
// process was frozen notices by its heartbeat's timeout, which has passed
// by then); and the netmap is applied again, as the split tunnel's guards
// (the default gateways) and the LANs it leaves alone may have changed.
func (e *Engine) roam(ctx context.Context, s *session, why string) {
	e.log.Info("the network changed; registering again", "why", why)
	s.relay.NetworkChanged(why)
	if n, err := s.dev.Handshake(staleSession); err != nil {
		e.log.Warn("renewing wireguard sessions", "err", err)
	} else if n > 0 {
		e.log.Info("renewing wireguard sessions", "peers", n)
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
	if err := e.reapply(ctx, s); err != nil && ctx.Err() == nil {
		e.log.Warn("applying the netmap again after the network changed", "err", err)
	}
}

// watchFreeze calls frozen whenever a tick of ticks arrives gap or more
// after the one before, by either clock now reads: the monotonic clock,
// which runs while the process is stopped, and the wall clock, which also
// runs while the machine sleeps (Linux stops the monotonic one then). It
// returns when ctx ends.
func watchFreeze(ctx context.Context, ticks <-chan time.Time, now func() time.Time, gap time.Duration, frozen func(time.Duration)) {
	last := now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticks:
		}
		t := now()
		d := max(t.Sub(last), t.Round(0).Sub(last.Round(0)))
		last = t
		if d >= gap {
			frozen(d)
		}
	}
}
