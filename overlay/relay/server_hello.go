package relay

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/warrennet/warren/overlay/wire"
)

func (s *Server) handleHello(rs *readState, now time.Time, pkt []byte, f Frame, from netip.AddrPort) {
	rs.last = lastData{}
	if !rs.hellos.take(now, helloRate, helloBurst, 1) {
		s.stats.helloLimited.Add(1)
		s.logs.logf(slog.LevelWarn, "relay is over its HELLO budget; dropping HELLOs", "from", from.String())
		return
	}
	c, tag, err := openHello(s.key, pkt, f, now)
	switch {
	case errors.Is(err, ErrExpired):
		s.stats.expired.Add(1)
		s.logs.logf(slog.LevelInfo, "relay refused a HELLO with an expired credential", "node", c.NodeID, "from", from.String())
		s.refuse(rs, now, from, CodeExpired, wire.Key{})
		return
	case err != nil:
		s.stats.badCredential.Add(1)
		s.logs.logf(slog.LevelWarn, "relay refused a HELLO", "from", from.String(), "err", err)
		s.refuse(rs, now, from, CodeBadCredential, wire.Key{})
		return
	}
	r := rs.byKey[c.PublicKey]
	if r != nil && r.live(now) && f.Timestamp <= r.helloTS && !(f.Timestamp == r.helloTS && from == r.addr) {
		// Older, or the same HELLO from somewhere else: a replay. (The
		// same HELLO from the same address is a duplicate; ACK it again.)
		s.stats.stale.Add(1)
		s.logs.logf(slog.LevelWarn, "relay refused a stale HELLO", "node", c.NodeID, "from", from.String())
		s.refuse(rs, now, from, CodeStale, wire.Key{})
		return
	}
	if r == nil || !r.live(now) {
		if r == nil {
			r = &registration{key: c.PublicKey}
			rs.byKey[c.PublicKey] = r
		}
		r.logged = false
		s.stats.registrations.Add(1)
	}
	if r.addr != from {
		if r.addr.IsValid() && rs.byAddr[r.addr] == r {
			delete(rs.byAddr, r.addr)
		}
		if other := rs.byAddr[from]; other != nil {
			// A NAT gave this address to another node: the old
			// holder is unreachable until its next HELLO.
			other.addr, other.udp = netip.AddrPort{}, nil
		}
		rs.byAddr[from] = r
		if r.addr.IsValid() {
			s.log.Info("relay node moved", "node", c.NodeID, "key", c.PublicKey.String(), "addr", from.String(), "was", r.addr.String())
		} else {
			s.log.Info("relay registered node", "node", c.NodeID, "role", c.Role, "key", c.PublicKey.String(), "addr", from.String())
		}
		r.addr, r.udp = from, net.UDPAddrFromAddrPort(from)
	}
	r.nodeID = c.NodeID
	r.helloTS = f.Timestamp
	r.credExpires = c.Expires
	r.expires = now.Add(RegistrationTimeout)
	if c.Expires.Before(r.expires) {
		r.expires = c.Expires
	}
	s.stats.hellos.Add(1)
	s.queueCtl(rs, outPkt{buf: appendAck(make([]byte, 0, ackLen), &tag, f.Timestamp, from), addr: r.udp})
}
