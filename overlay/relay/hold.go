package relay

import (
	"log/slog"
	"sync"
	"time"

	"github.com/warrennet/warren/overlay/wire"
)

// Until the relay has confirmed a socket's registration it drops what the
// socket sends it (and answers "not registered"); so it does after the
// host's network changed, until the node's next HELLO moves it.
// wireguard-go sends its handshake initiation the moment a peer is
// configured, usually before the first HELLO-ACK is back, and retries
// only after REKEY_TIMEOUT (5 s): `warren up` took over 5 s. So the Bind
// holds the datagrams it is asked to relay before the first ACK of its
// socket and target (and, after a change of network, before the ACK of
// its next HELLO), and sends them once the ACK arrives.
const (
	maxHeld = 64              // datagrams held; more are dropped, as the relay would have
	heldFor = 5 * time.Second // older ones are dropped: wireguard-go has resent by then
)

// held is what a socket holds for the relay until its registration is
// confirmed.
type held struct {
	mu     sync.Mutex
	frames []heldFrame
}

type heldFrame struct {
	key  wire.Key
	data []byte
	at   time.Time
}

// hold keeps copies of bufs, to key, unless the registration of s at t
// is confirmed; it reports whether it did (the caller sends otherwise).
func (b *Bind) hold(s *socket, t *target, key wire.Key, bufs [][]byte) bool {
	if b.registered(s, t) {
		return false
	}
	s.held.mu.Lock()
	defer s.held.mu.Unlock()
	// onAck stores the ACK before it takes the lock to flush: checked
	// again under the lock, nothing held here is left behind.
	if b.registered(s, t) {
		return false
	}
	now := time.Now()
	for _, d := range bufs {
		if len(s.held.frames) == maxHeld {
			break
		}
		s.held.frames = append(s.held.frames, heldFrame{key: key, data: append([]byte(nil), d...), at: now})
	}
	return true
}

// registered reports whether the relay of target t has confirmed a
// registration of socket s: for t, or for an earlier credential there
// (which the relay keeps honouring until the new one's HELLO replaces it),
// since the network last changed (NetworkChanged).
func (b *Bind) registered(s *socket, t *target) bool {
	a := b.ack.Load()
	return a != nil && a.s == s && (a.t == t || a.t.relay == t.relay) && a.ts >= s.confirmAfter.Load()
}

// flushHeld sends what s held for the relay of t, now that its
// registration is confirmed (the receive path calls it on every genuine
// HELLO-ACK; mostly there is nothing).
func (b *Bind) flushHeld(s *socket, t *target) {
	s.held.mu.Lock()
	frames := s.held.frames
	s.held.frames = nil
	s.held.mu.Unlock()
	for i := 0; i < len(frames); {
		// One send per run of frames to the same peer.
		j := i + 1
		for j < len(frames) && frames[j].key == frames[i].key {
			j++
		}
		var bufs [][]byte
		for _, f := range frames[i:j] {
			if time.Since(f.at) < heldFor {
				bufs = append(bufs, f.data)
			}
		}
		if len(bufs) > 0 {
			if err := b.sendTo(s, bufs, t.udp, &frames[i].key); err != nil {
				b.logs.logf(slog.LevelWarn, "relay bind: sending held datagrams to the relay", "err", err)
			}
		}
		i = j
	}
}
