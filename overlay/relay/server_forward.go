package relay

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/warrennet/warren/overlay/wire"
)

func (s *Server) handleData(rs *readState, now time.Time, pkt []byte, key wire.Key, from netip.AddrPort) {
	disco := pkt[DataHeaderLen] == DiscoMagic // a CALL, not a WireGuard message
	if c := &rs.last; !disco && c.src != nil && c.from == from && c.key == key && c.now.Equal(now) {
		// The same source and destination as the frame before, in the
		// same read: every check below passed then and still holds (a
		// HELLO or a sweep clears this), except the source's rate.
		if !s.overRate(rs, now, c.src, pkt, from, key) {
			s.addToRun(rs, now, c.src, c.dst, pkt, from)
		}
		return
	}
	rs.last = lastData{}
	src := rs.byAddr[from]
	switch {
	case src != nil && !src.live(now) && !now.Before(src.credExpires):
		s.stats.expired.Add(1)
		s.refuse(rs, now, from, CodeExpired, wire.Key{})
		return
	case src == nil || !src.live(now):
		s.stats.notRegistered.Add(1)
		s.logs.logf(slog.LevelDebug, "relay dropped data from an unregistered address", "from", from.String())
		s.refuse(rs, now, from, CodeNotRegistered, wire.Key{})
		return
	}
	dst := rs.byKey[key]
	if dst == nil || !dst.live(now) || dst.udp == nil {
		s.stats.unknownPeer.Add(1)
		s.logs.logf(slog.LevelDebug, "relay dropped data for an unregistered key", "node", src.nodeID, "dst", key.String())
		s.refuse(rs, now, from, CodeUnknownPeer, key)
		return
	}
	if dst == src || !s.allow(rs, now, src.key, dst.key) {
		s.stats.notAllowed.Add(1)
		s.logs.logf(slog.LevelDebug, "relay dropped data the policy refuses", "node", src.nodeID, "dst", dst.nodeID)
		s.refuse(rs, now, from, CodeNotAllowed, key)
		return
	}
	if s.overRate(rs, now, src, pkt, from, key) {
		return
	}
	if disco {
		s.forwardCall(rs, now, src, dst, pkt)
		return
	}
	rs.last = lastData{from: from, key: key, now: now, src: src, dst: dst}
	s.addToRun(rs, now, src, dst, pkt, from)
}

// forwardCall forwards a disco message in DATA from src to dst: only a
// CALL, and with only the candidates the relay has seen src at (see
// seenAt), so that a node cannot make its peer probe addresses of its
// choosing. Anything else that starts with DiscoMagic is dropped: the
// peer would act on candidates the relay could not check.
func (s *Server) forwardCall(rs *readState, now time.Time, src, dst *registration, pkt []byte) {
	m, err := ParseDisco(pkt[DataHeaderLen:])
	if err == nil && m.Type != DiscoCall {
		err = fmt.Errorf("%w: disco %v through the relay", ErrMalformed, m.Type)
	}
	if err != nil {
		s.stats.malformed.Add(1)
		s.logs.logf(slog.LevelDebug, "relay dropped a disco message it cannot check", "node", src.nodeID, "err", err)
		return
	}
	kept := m.Candidates[:0]
	for _, c := range m.Candidates {
		if seenAt(src, dst, c) {
			kept = append(kept, c)
		}
	}
	if n := len(m.Candidates) - len(kept); n > 0 {
		s.stats.candidatesRemoved.Add(uint64(n))
		s.logs.logf(slog.LevelDebug, "relay removed call candidates it has not seen the node at", "node", src.nodeID, "removed", n)
	}
	m.Candidates = kept
	buf := getBuf(len(pkt))[:DataHeaderLen]
	putDataHeader(buf, &src.key)
	buf, _ = m.Append(buf) // parsed, so it encodes; never longer than pkt
	s.flushRun(rs, now)
	if !s.sched.push(&src.q, outPkt{buf: buf, addr: dst.udp, data: true}) {
		putBuf(buf)
		s.stats.queueFull.Add(1)
		return
	}
	rs.queued = true
}

// seenAt reports whether the relay may pass on c as a candidate of src's
// in a CALL to dst: c is where the relay sees src (its HELLOs' source,
// the public side of its NAT), or c is a private address (RFC 1918,
// fc00::/7) and the relay sees src and dst at the same public address,
// behind one NAT, where src can reach that network anyway. Where the
// relay sees src is a private address only if it sees dst at one too (a
// relay on a private network): seen from a public address, it is a
// spoofed source (see docs/PROTOCOL.md).
func seenAt(src, dst *registration, c netip.AddrPort) bool {
	c = netip.AddrPortFrom(c.Addr().Unmap(), c.Port())
	switch {
	case !dst.addr.IsValid():
		return false
	case c == src.addr:
		return !c.Addr().IsPrivate() || dst.addr.Addr().IsPrivate()
	}
	return c.Addr().IsPrivate() && src.addr.Addr() == dst.addr.Addr()
}

// overRate takes pkt from src's rate budget, or refuses it and reports
// true if the budget is spent.
func (s *Server) overRate(rs *readState, now time.Time, src *registration, pkt []byte, from netip.AddrPort, key wire.Key) bool {
	if s.nodeRate <= 0 || src.bucket.take(now, s.nodeRate, s.burst, float64(len(pkt))) {
		return false
	}
	s.stats.rateLimited.Add(1)
	s.logs.logf(slog.LevelDebug, "relay dropped data over the node's rate", "node", src.nodeID)
	s.refuse(rs, now, from, CodeRateLimited, key)
	return true
}

// addToRun adds a DATA frame that passed every check to the run being
// gathered, first sending that run on if the frame cannot join it. pkt is
// the frame being handled: at rs.curOff in message rs.cur's buffer.
func (s *Server) addToRun(rs *readState, now time.Time, src, dst *registration, pkt []byte, from netip.AddrPort) {
	r := &rs.run
	if r.n > 0 && (r.src != src || r.to != dst.udp || r.ended || len(pkt) > r.seg ||
		r.n == maxSegments || len(r.buf)+len(pkt) > maxRunLen || !s.gso.Load() ||
		r.msg != rs.cur || r.off+len(r.buf) != rs.curOff) {
		s.flushRun(rs, now)
	}
	if r.n == 0 {
		*r = run{src: src, to: dst.udp, from: from, dst: dst.key, msg: rs.cur, off: rs.curOff, seg: len(pkt)}
	}
	// The outgoing frame is the incoming one with the source's key in
	// place of the destination's.
	copy(pkt[HeaderLen:DataHeaderLen], src.key[:])
	r.buf = rs.curBuf[r.off : rs.curOff+len(pkt)]
	r.n++
	r.ended = len(pkt) < r.seg
}

// flushRun queues the run being gathered, if any, on its source's queue:
// with the buffer it sits in if it can take it (see run), else a copy.
func (s *Server) flushRun(rs *readState, now time.Time) {
	r := &rs.run
	if r.n == 0 {
		return
	}
	buf := r.buf
	if r.n > 1 && r.off == 0 && r.msg != rs.cur {
		rs.taken[r.msg] = true
	} else {
		buf = append(getBuf(len(r.buf))[:0], r.buf...)
	}
	p := outPkt{buf: buf, addr: r.to, data: true, n: r.n}
	if r.n > 1 {
		p.seg = r.seg
	}
	if s.sched.push(&r.src.q, p) {
		rs.queued = true
	} else {
		putBuf(buf)
		s.stats.queueFull.Add(uint64(r.n))
		s.logs.logf(slog.LevelDebug, "relay dropped data at the node's full queue", "node", r.src.nodeID)
		s.refuse(rs, now, r.from, CodeRateLimited, r.dst)
	}
	*r = run{}
}

// allow asks the policy, reusing an answer younger than allowedTTL.
func (s *Server) allow(rs *readState, now time.Time, src, dst wire.Key) bool {
	p := pair{src, dst}
	if v, ok := rs.verdicts[p]; ok && fresh(now, v.at, allowedTTL) {
		return v.ok
	}
	ok := s.allowed(src, dst)
	rs.verdicts[p] = verdict{ok: ok, at: now}
	return ok
}

// refuse queues an ERROR frame to addr, at most one per address per
// replyInterval. A refusal is never longer than the frame it answers, so
// the relay cannot be used to amplify traffic towards a spoofed address.
func (s *Server) refuse(rs *readState, now time.Time, to netip.AddrPort, code Code, key wire.Key) {
	at, seen := rs.replied[to]
	if (seen && fresh(now, at, replyInterval)) || (!seen && len(rs.replied) >= maxReplied) {
		s.stats.replyLimited.Add(1)
		return
	}
	rs.replied[to] = now
	s.queueCtl(rs, outPkt{buf: appendError(make([]byte, 0, errorLen), code, key), addr: net.UDPAddrFromAddrPort(to)}, ctlLen/2)
}

// queueCtl queues a control frame while the control queue holds fewer
// than limit (see sched.pushCtl).
func (s *Server) queueCtl(rs *readState, p outPkt, limit int) {
	if !s.sched.pushCtl(p, limit) {
		s.stats.replyLimited.Add(1)
		return
	}
	rs.queued = true
}
