package relay

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/warrennet/warren/overlay/wire"
)

// handleHello registers, refreshes or moves the key of a HELLO that
// verifies. The order of the checks is what keeps a flood of HELLOs from
// spoofed addresses from starving registered nodes:
//
//  1. the MAC, statelessly: a forged HELLO stops here, having charged no
//     budget;
//  2. the timestamp against the key's registration: a replay (older, or
//     the registered HELLO from another address) is refused as stale,
//     and the registered HELLO again from the registered address is
//     acknowledged again at most once per dupAckEvery;
//  3. the key's own budget, which only HELLOs with new timestamps, made
//     by the credential's holder, can spend;
//  4. for a HELLO that registers the key or moves it to a new address,
//     its source's budget and the server's: a node's HELLO from the
//     address it is registered at is never charged to them.
func (s *Server) handleHello(rs *readState, now time.Time, pkt []byte, f Frame, from netip.AddrPort) {
	rs.last = lastData{}
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
	live := r != nil && r.live(now)
	switch {
	case live && f.Timestamp == r.helloTS && from == r.addr:
		// A duplicate (the network's, or a replay from the node's own
		// address): ACK it again, but not more than once a second.
		if fresh(now, r.dupAcked, dupAckEvery) {
			s.stats.helloLimited.Add(1)
			return
		}
		r.dupAcked = now
		s.stats.hellos.Add(1)
		s.queueCtl(rs, outPkt{buf: appendAck(make([]byte, 0, ackLen), &tag, f.Timestamp, from), addr: r.udp}, ctlLen)
		return
	case live && f.Timestamp <= r.helloTS:
		// Older, or the same HELLO from somewhere else: a replay.
		s.stats.stale.Add(1)
		s.logs.logf(slog.LevelWarn, "relay refused a stale HELLO", "node", c.NodeID, "from", from.String())
		s.refuse(rs, now, from, CodeStale, wire.Key{})
		return
	}
	if r != nil && !r.hellos.take(now, nodeHelloRate, nodeHelloBurst, 1) {
		s.stats.helloLimited.Add(1)
		s.logs.logf(slog.LevelWarn, "relay dropped HELLOs over the node's budget", "node", c.NodeID, "from", from.String())
		return
	}
	if !live || r.addr != from {
		if !s.takeSource(rs, now, from) {
			s.stats.helloLimited.Add(1)
			s.logs.logf(slog.LevelWarn, "relay dropped HELLOs over the source's budget", "node", c.NodeID, "from", from.String())
			return
		}
		if !rs.hellos.take(now, helloRate, helloBurst, 1) {
			s.stats.helloLimited.Add(1)
			s.logs.logf(slog.LevelWarn, "relay is over its budget of new registrations; dropping HELLOs", "from", from.String())
			return
		}
	}
	if !live {
		if r == nil {
			r = &registration{key: c.PublicKey}
			r.hellos.take(now, nodeHelloRate, nodeHelloBurst, 1)
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
	r.dupAcked = time.Time{}
	r.credExpires = c.Expires
	r.expires = now.Add(RegistrationTimeout)
	if c.Expires.Before(r.expires) {
		r.expires = c.Expires
	}
	s.stats.hellos.Add(1)
	s.queueCtl(rs, outPkt{buf: appendAck(make([]byte, 0, ackLen), &tag, f.Timestamp, from), addr: r.udp}, ctlLen)
}

// takeSource takes one HELLO from the budget of from's source: its IPv4
// address, or its IPv6 /64 (what one host or one network holds). It
// reports false if the budget is spent, or if maxSources sources are
// metered already and from's is not one of them.
func (s *Server) takeSource(rs *readState, now time.Time, from netip.AddrPort) bool {
	p := sourcePrefix(from.Addr())
	b := rs.sources[p]
	if b == nil {
		if len(rs.sources) >= maxSources {
			return false
		}
		b = &tokenBucket{}
		rs.sources[p] = b
	}
	return b.take(now, sourceHelloRate, sourceHelloBurst, 1)
}

// sourcePrefix is the source a budget is kept for: an IPv4 address (or
// an IPv4-mapped IPv6 one), or the /64 of an IPv6 address.
func sourcePrefix(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	p, _ := a.Prefix(64)
	return p
}
