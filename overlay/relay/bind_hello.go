package relay

import (
	"log/slog"
	"time"
)

// keepalive sends HELLOs on s until Close: at once, then every interval
// once answered; unanswered, it resends after 1 s, 2 s, 4 s … up to the
// interval. A poke sends one at once for a new target, or no sooner than
// minHelloGap after the last for the same one; an urgent poke (the
// network changed) at once.
func (b *Bind) keepalive(s *socket) {
	var (
		sentT  *target
		sentTS uint64
		sentAt time.Time
		wait   time.Duration
		poked  bool
	)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-s.kick:
			poked = true
		case <-timer.C:
		}
		t := b.target.Load()
		if !t.usable() {
			poked = false
			timer.Reset(b.interval)
			continue
		}
		now := time.Now()
		urgent := s.urgent.Swap(false)
		if t == sentT && !urgent {
			acked := b.ackedSince(t, s, sentTS)
			next := sentAt.Add(wait)
			if acked {
				next = sentAt.Add(b.interval)
			}
			if gap := sentAt.Add(minHelloGap); poked && gap.Before(next) {
				next = gap
			}
			if now.Before(next) {
				timer.Reset(next.Sub(now))
				continue
			}
			if acked {
				wait = min(firstRetry, b.interval)
			} else {
				wait = min(2*wait, b.interval)
			}
		} else {
			wait = min(firstRetry, b.interval)
		}
		poked = false
		sentT, sentTS, sentAt = t, b.sendHello(s, t), now
		timer.Reset(wait)
	}
}

// ackedSince reports whether the relay answered a HELLO at or after ts.
func (b *Bind) ackedSince(t *target, s *socket, ts uint64) bool {
	a := b.ack.Load()
	return a != nil && a.t == t && a.s == s && a.ts >= ts
}

// sendHello sends a HELLO for t and returns its timestamp.
func (b *Bind) sendHello(s *socket, t *target) uint64 {
	ts := b.nextTS()
	pkt := appendHello(make([]byte, 0, helloCap), t.cred, ts)
	if _, err := s.conn.WriteToUDPAddrPort(pkt, t.relay); err != nil && !s.closed.Load() {
		b.logs.logf(slog.LevelWarn, "relay bind: sending HELLO failed", "relay", t.relay.String(), "err", err)
	}
	return ts
}

// nextTS returns a HELLO timestamp: the wall clock in nanoseconds, or one
// more than the last if the clock has not moved on.
func (b *Bind) nextTS() uint64 {
	for {
		last := b.lastTS.Load()
		ts := max(uint64(time.Now().UnixNano()), last+1)
		if b.lastTS.CompareAndSwap(last, ts) {
			return ts
		}
	}
}
