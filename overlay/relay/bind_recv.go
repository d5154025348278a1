package relay

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/ipv4"
	"golang.zx2c4.com/wireguard/conn"

	"github.com/warrennet/warren/overlay/wire"
)

func (b *Bind) receiveFunc(s *socket) conn.ReceiveFunc {
	return func(packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		rb := b.recvPool.Get().(*recvBatch)
		defer b.recvPool.Put(rb)
		// With GRO one read can return maxSegments datagrams in one
		// buffer: read only as many as the packets can take once split,
		// into the last of them, and split them forward.
		at := 0
		if s.gro {
			at = len(packets) - max(1, len(packets)/maxSegments)
		}
		ms := rb.ms[:min(len(packets)-at, len(rb.ms))]
		defer func() {
			for i := range ms {
				ms[i].Buffers[0], ms[i].Addr = nil, nil
			}
		}()
		for {
			for i := range ms {
				ms[i].Buffers[0], ms[i].OOB = packets[at+i], ms[i].OOB[:cap(ms[i].OOB)]
			}
			n, err := s.bc.ReadBatch(ms, 0)
			if err != nil {
				if s.closed.Load() || errors.Is(err, net.ErrClosed) {
					return 0, net.ErrClosed
				}
				return 0, fmt.Errorf("relay bind: reading: %w", err)
			}
			if got := b.unwrap(s, ms[:n], at, packets, sizes, eps); got > 0 {
				return got, nil
			}
		}
	}
}

// unwrap handles the messages just read into packets[at:]: the DATA
// frames' datagrams are moved, in order, to packets[0:], sized and given
// their endpoints; every other frame is handled here. A message read
// with GRO holds several frames, split here. It returns how many
// datagrams it placed.
//
// Moving forward in place is safe: a datagram goes to packets[k] only
// while k is at most the index of the buffer it is read from, and a
// frame's datagram is shorter than the frame, so nothing is overwritten
// before it is read.
func (b *Bind) unwrap(s *socket, ms []ipv4.Message, at int, packets [][]byte, sizes []int, eps []conn.Endpoint) int {
	t := b.target.Load()
	var byAddr map[netip.AddrPort]*Endpoint
	if s.disco != nil {
		byAddr = *s.disco.byAddr.Load()
	}
	got := 0
	var (
		last    *Endpoint // the endpoint of the last relayed frame
		lastKey wire.Key
	)
	// put moves a datagram read from packets[i] to the next slot.
	put := func(i int, datagram []byte, e *Endpoint) {
		if got > i {
			// More datagrams than buffers: only possible if the
			// kernel coalesced more than maxSegments.
			b.logs.logf(slog.LevelWarn, "relay bind: dropped datagrams of a receive run longer than the batch")
			return
		}
		sizes[got] = copy(packets[got], datagram)
		eps[got] = e
		got++
	}
	for i := range ms {
		seg := 0
		if s.gro {
			seg = segmentSize(ms[i].OOB[:ms[i].NN])
		}
		from := addrPortOf(ms[i].Addr)
		buf := packets[at+i][:ms[i].N]
		if t == nil || !t.relay.IsValid() || from != t.relay {
			// Not from the relay: disco messages, and WireGuard
			// datagrams from a peer's confirmed direct address.
			// Everything else is dropped.
			switch {
			case s.disco == nil || len(buf) == 0:
			case buf[0] == DiscoMagic:
				for msg := range segments(buf, seg) {
					s.disco.onDirect(msg, from)
				}
			default:
				// One lookup per message, not per datagram: a coalesced
				// message holds up to 64, all from the same address, and
				// hashing the address was 3 % of a connector's upload.
				if e := byAddr[from]; e != nil {
					if path := e.direct.Load(); path != nil && path.addr == from {
						path.lastRecv.Store(time.Now().UnixNano())
					}
					for d := range segments(buf, seg) {
						put(at+i, d, e)
					}
				}
			}
			continue
		}
		for pkt := range segments(buf, seg) {
			if key, ok := dataKey(pkt); ok {
				// DATA, checked in place rather than parsed into a Frame.
				payload := pkt[DataHeaderLen:]
				if payload[0] == DiscoMagic {
					if s.disco != nil {
						s.disco.onRelayed(key, payload)
					}
					continue
				}
				// A run of frames mostly comes from one peer: look its
				// endpoint up (and note the traffic) once per run.
				if last == nil || key != lastKey {
					last, lastKey = b.endpoint(key), key
					if s.disco != nil {
						s.disco.noteSend(last)
						s.disco.onRelayedData(last)
					}
				}
				if s.disco != nil && isHandshakeInitiation(payload) {
					s.disco.onRelayedHandshake(last)
				}
				put(at+i, payload, last)
				continue
			}
			f, err := Parse(pkt)
			if err != nil {
				b.logs.logf(slog.LevelDebug, "relay bind: dropped a malformed frame from the relay", "err", err)
				continue
			}
			switch {
			case f.Type == TypeHelloAck:
				b.onAck(s, t, pkt, f)
			case f.Type == TypeError:
				b.onRefusal(s, f)
			}
		}
	}
	return got
}

func (b *Bind) onAck(s *socket, t *target, pkt []byte, f Frame) {
	if t.cred == nil || f.Timestamp <= t.minTS || !checkAck(t.cred, pkt, f) {
		b.logs.logf(slog.LevelDebug, "relay bind: ignored a HELLO-ACK that is not for this relay and credential")
		return
	}
	prev := b.currentAck(t)
	now := time.Now()
	b.ack.Store(&ackInfo{t: t, s: s, ts: f.Timestamp, at: now, observed: f.Observed})
	b.flushHeld(s, t)
	if prev == nil || now.Sub(prev.at) >= b.liveFor() {
		b.log.Info("relay registration live", "relay", t.relay.String(), "observed", f.Observed.String())
	}
	if prev != nil && prev.observed != f.Observed && s.disco != nil {
		// The relay sees this node somewhere new: its NAT rebound, or
		// the laptop moved to another network. Direct paths were
		// punched from the old address: find new ones now rather than
		// wait for them to time out.
		s.disco.dropAll("this node's public address changed from " + prev.observed.String() + " to " + f.Observed.String())
	}
}

func (b *Bind) onRefusal(s *socket, f Frame) {
	b.refusal.Store(&refusalInfo{code: f.Code, key: f.Key, at: time.Now()})
	args := []any{"code", f.Code.String()}
	if !f.Key.IsZero() {
		args = append(args, "peer", f.Key.String())
	}
	switch f.Code {
	case CodeNotRegistered:
		// The relay forgot us (it restarted, or we were silent too
		// long): register again without waiting for the keepalive.
		s.poke()
		b.logs.logf(slog.LevelInfo, "relay bind: relay lost our registration; sending HELLO", args...)
	case CodeExpired, CodeBadCredential, CodeStale:
		b.logs.logf(slog.LevelWarn, "relay bind: relay refused our HELLO", args...)
	default:
		b.logs.logf(slog.LevelDebug, "relay bind: relay refused a datagram", args...)
	}
}

func (s *socket) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}
