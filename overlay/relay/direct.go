package relay

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrennet/warren/overlay/wire"
)

// Direct-path timing (docs/PROTOCOL.md, "Direct path").
const (
	// discoTick is how often the discovery loop looks at its peers.
	discoTick = time.Second
	// firstCallWait is the wait between CALLs to a peer that has no
	// direct path; it doubles after each CALL up to maxCallWait, and
	// starts again when traffic resumes after a pause.
	firstCallWait = 2 * time.Second
	maxCallWait   = 2 * time.Minute
	// answerCallsEvery: a node answers a CALL with its own at most this
	// often, so that two nodes do not echo CALLs forever.
	answerCallsEvery = time.Second
	// probeFor is how long after a CALL the candidates are pinged, once
	// per discoTick, while no direct path works.
	probeFor = 5 * time.Second
	// pingDirectEvery keeps a direct path checked (and NAT mappings
	// open) while traffic flows; directTimeout drops a path that has
	// not answered for that long.
	pingDirectEvery = 3 * time.Second
	directTimeout   = 10 * time.Second
	// trustFor is how long after its last PONG a direct path is trusted
	// alone. Past that, until a PONG or directTimeout, Send sends on
	// both paths: WireGuard drops the duplicates, and a path that died
	// silently (the peer moved) costs at most trustFor of traffic.
	trustFor = pingDirectEvery + 2*time.Second
	// silentFor: a path Send uses that has brought nothing back for this
	// long is probed with a PING at once (no more often than this). A
	// probe unanswered for probeWait (at least minProbeWait, else twice
	// the path's round trip) makes the path untrusted until it answers,
	// and one unanswered for probeTimeout drops it. So a path that died
	// silently under a node that keeps sending (its NAT's public address
	// changed, the peer's NAT forgot it) costs a few hundred ms, not
	// trustFor; a one-way flow on a live path costs a PING and a PONG
	// every silentFor.
	silentFor    = 100 * time.Millisecond
	minProbeWait = 150 * time.Millisecond
	probeTimeout = 2 * time.Second
	// activeFor is how long after the last Send a peer counts as in use:
	// only peers in use are called and their paths kept.
	activeFor = time.Minute
	// maxPings bounds the unanswered PINGs remembered.
	maxPings = 256
)

// directPath is a confirmed direct address of a peer, on one socket.
type directPath struct {
	s        *socket
	addr     netip.AddrPort
	udp      *net.UDPAddr
	lastPong atomic.Int64 // UnixNano of the last PONG from addr
	// doubted: since the last PONG, the peer started a handshake
	// through the relay, as it does after it restarted its tunnel (a new
	// socket, so this path leads nowhere) and would not if it used the
	// path; or it CALLed, which it does only without a direct path; or
	// this node's network changed.
	doubted atomic.Bool
	// lastRecv is the UnixNano of the last datagram from addr; lastProbe
	// that of the last PING a silence or a doubt sent; probing that of
	// the oldest such PING still unanswered, zero if none.
	lastRecv, lastProbe, probing atomic.Int64
	// reregistered: Send asked the Bind to register again since the
	// path last answered (it stopped answering a probe: this node's
	// NAT may have moved it).
	reregistered atomic.Bool
	// probeWait is how long a probe may go unanswered before the path
	// is no longer trusted alone.
	probeWait time.Duration
}

// trusted reports whether the path answered within trustFor, has not
// been doubted since, and has no probe unanswered past probeWait.
func (p *directPath) trusted(now int64) bool {
	if now-p.lastPong.Load() > int64(trustFor) || p.doubted.Load() {
		return false
	}
	probe := p.probing.Load()
	return probe == 0 || now-probe <= int64(p.probeWait)
}

// answered records a PONG from the path at now.
func (p *directPath) answered(now int64) {
	p.lastPong.Store(now)
	p.lastRecv.Store(now)
	p.probing.Store(0)
	p.doubted.Store(false)
	p.reregistered.Store(false)
}

// discovery is the direct-path state of one open socket: per peer, the
// tokens, candidates and PINGs in flight. It lives as long as the socket:
// a new socket means new NAT mappings, so everything starts afresh.
type discovery struct {
	b *Bind
	s *socket

	mu      sync.Mutex // guards the maps below and every peerDisco
	peers   map[wire.Key]*peerDisco
	byToken map[token]*peerDisco // by the token the peer's PINGs carry
	pings   map[uint64]pingSent  // PINGs awaiting a PONG, by transaction ID

	// byAddr maps confirmed direct addresses to their peers, for the
	// receive path; replaced, never modified.
	byAddr atomic.Pointer[map[netip.AddrPort]*Endpoint]
	kick   chan struct{} // capacity 1: a peer needs a CALL now
}

// peerDisco is what discovery knows about one peer. Guarded by
// discovery.mu.
type peerDisco struct {
	ep         *Endpoint
	mine       token // what the peer's PINGs must carry
	theirs     token // what this node's PINGs to the peer carry
	haveTheirs bool
	candidates []netip.AddrPort // the peer's, from its CALL and from PINGs heard
	lastCall   time.Time        // this node's last CALL to the peer
	lastCallIn time.Time        // the peer's last CALL to this node
	lastAnswer time.Time        // this node's last CALL answering one
	// lastPingBack is when this node last answered a PING with one.
	lastPingBack time.Time
	callWait     time.Duration
	probeUntil   time.Time // ping candidates until then
	lastPing     time.Time // on the direct path
	// heard is where the peer's last valid PING came from: the peer may
	// already send there before this node has confirmed a path of its
	// own, so datagrams from it are taken too.
	heard netip.AddrPort
}

type pingSent struct {
	p  *peerDisco
	to netip.AddrPort
	at time.Time
}

func newDiscovery(b *Bind, s *socket) *discovery {
	d := &discovery{
		b: b, s: s,
		peers:   map[wire.Key]*peerDisco{},
		byToken: map[token]*peerDisco{},
		pings:   map[uint64]pingSent{},
		kick:    make(chan struct{}, 1),
	}
	d.byAddr.Store(&map[netip.AddrPort]*Endpoint{})
	return d
}

// peer returns the state of e's peer, made on first use. d.mu is held.
func (d *discovery) peer(e *Endpoint) *peerDisco {
	p := d.peers[e.key]
	if p == nil {
		p = &peerDisco{ep: e, callWait: firstCallWait}
		rand.Read(p.mine[:])
		d.peers[e.key] = p
		d.byToken[p.mine] = p
	}
	return p
}

// noteSend is called by Send, and for each datagram the relay brings
// from e's peer: it marks the peer in use and asks for a CALL at once if
// it has no direct path and was idle or never called. (So the receiving
// side of a one-way flow looks for a path too, and a node whose peer
// moved learns of it from the peer's new token at once.) It returns the
// time it used, in UnixNano.
func (d *discovery) noteSend(e *Endpoint) int64 {
	now := time.Now().UnixNano()
	last := e.lastSend.Swap(now)
	if now-last < int64(time.Second) || e.direct.Load() != nil {
		return now
	}
	select {
	case d.kick <- struct{}{}:
	default:
	}
	return now
}

// run is the discovery loop: it CALLs peers in use that have no direct
// path, pings candidates while probing, and keeps direct paths checked.
// It returns when stop is closed.
func (d *discovery) run(stop <-chan struct{}) {
	tick := time.NewTicker(discoTick)
	defer tick.Stop()
	for {
		kicked := false
		select {
		case <-stop:
			return
		case <-tick.C:
		case <-d.kick:
			kicked = true
		}
		d.step(time.Now(), kicked)
	}
}

// step does one round of the loop's work.
func (d *discovery) step(now time.Time, kicked bool) {
	var calls []*Endpoint
	var pings []pingOut
	d.mu.Lock()
	// Peers in use with no state yet get it here.
	d.b.endpoints.Range(func(_, v any) bool {
		e := v.(*Endpoint)
		if d.inUse(e, now) && d.peers[e.key] == nil {
			d.peer(e)
		}
		return true
	})
	for _, p := range d.peers {
		e := p.ep
		inUse := d.inUse(e, now)
		path := e.direct.Load()
		switch {
		case path == nil || path.s != d.s:
		case !inUse:
			// Idle: NAT mappings lapse without traffic, so the path
			// goes quietly; traffic that resumes finds a new one.
			d.dropLocked(p, slog.LevelDebug, "idle")
		case now.UnixNano()-path.lastPong.Load() > int64(directTimeout):
			d.dropLocked(p, slog.LevelInfo, "no answer for "+directTimeout.String())
		case path.probing.Load() != 0 && now.UnixNano()-path.probing.Load() > int64(probeTimeout):
			d.dropLocked(p, slog.LevelInfo, "no answer to a probe for "+probeTimeout.String())
		default:
			if now.Sub(p.lastPing) >= pingDirectEvery {
				p.lastPing = now
				pings = append(pings, d.pingLocked(p, path.addr, now))
			}
			continue
		}
		if !inUse {
			p.callWait = firstCallWait // traffic after a pause calls at once
			continue
		}
		if now.Sub(p.lastCall) >= p.callWait || (kicked && p.lastCall.IsZero()) {
			p.lastCall = now
			p.callWait = min(2*p.callWait, maxCallWait)
			p.probeUntil = now.Add(probeFor)
			calls = append(calls, e)
		}
		if now.Before(p.probeUntil) && p.haveTheirs {
			for _, c := range p.candidates {
				pings = append(pings, d.pingLocked(p, c, now))
			}
		}
	}
	d.mu.Unlock()
	for _, e := range calls {
		d.sendCall(e)
	}
	d.sendPings(pings)
}

// inUse reports whether Send used e (or the relay brought its datagrams)
// within the Bind's idleAfter, activeFor unless a test changed it.
func (d *discovery) inUse(e *Endpoint, now time.Time) bool {
	return now.UnixNano()-e.lastSend.Load() < int64(d.b.idleAfter)
}

// pingOut is a PING ready to send.
type pingOut struct {
	to  netip.AddrPort
	pkt []byte
}

// pingLocked records a PING to addr and returns it. d.mu is held.
func (d *discovery) pingLocked(p *peerDisco, addr netip.AddrPort, now time.Time) pingOut {
	var id [8]byte
	rand.Read(id[:])
	txid := binary.BigEndian.Uint64(id[:])
	if len(d.pings) >= maxPings {
		for k, v := range d.pings {
			if now.Sub(v.at) > probeFor {
				delete(d.pings, k)
			}
		}
		if len(d.pings) >= maxPings {
			clear(d.pings)
		}
	}
	d.pings[txid] = pingSent{p: p, to: addr, at: now}
	pkt, _ := Disco{Type: DiscoPing, TxID: txid, Token: p.theirs}.Append(nil)
	return pingOut{to: addr, pkt: pkt}
}

func (d *discovery) sendPings(ps []pingOut) {
	for _, p := range ps {
		d.b.log.Debug("disco: ping", "to", p.to.String())
		if _, err := d.s.conn.WriteToUDPAddrPort(p.pkt, p.to); err != nil && !d.s.closed.Load() {
			d.b.logs.logf(slog.LevelDebug, "relay bind: direct ping failed", "to", p.to.String(), "err", err)
		}
	}
}

// sendCall sends e's peer a CALL through the relay: this node's
// candidates and the token its PINGs must carry.
func (d *discovery) sendCall(e *Endpoint) {
	t := d.b.target.Load()
	if !t.usable() {
		return
	}
	d.mu.Lock()
	mine := d.peer(e).mine
	d.mu.Unlock()
	m := Disco{Type: DiscoCall, Token: mine, Candidates: d.b.candidates(d.s)}
	msg, err := m.Append(nil)
	if err != nil {
		d.b.log.Warn("relay bind: building a call", "err", err)
		return
	}
	d.b.log.Debug("disco: call", "peer", e.key.String(), "candidates", fmt.Sprint(m.Candidates))
	if d.b.hold(d.s, t, e.key, [][]byte{msg}) {
		return // sent once the relay confirms this socket's registration
	}
	var hdr [DataHeaderLen]byte
	putDataHeader(hdr[:], &e.key)
	if _, err := d.s.conn.WriteToUDPAddrPort(append(hdr[:], msg...), t.relay); err != nil && !d.s.closed.Load() {
		d.b.logs.logf(slog.LevelDebug, "relay bind: sending a call failed", "err", err)
	}
}

// onRelayedHandshake is called for a handshake initiation the relay
// brought from e's peer. If this node has a direct path to the peer, the
// peer may no longer be behind it (it took its tunnel down and up: a new
// socket, a new port), and the response would go there and be lost
// until wireguard-go retries, 5 s later. So the path is doubted: Send
// uses the relay too until the path answers a PING, sent now.
func (d *discovery) onRelayedHandshake(e *Endpoint) {
	path := e.direct.Load()
	if path == nil || path.s != d.s || path.doubted.Swap(true) {
		return
	}
	d.probe(e, path, time.Now().UnixNano())
}

// onRelayedData is called for each run of datagrams the relay brings
// from e's peer. A peer that has a direct path sends there, not through
// the relay; if this node's path has also been silent for silentFor, the
// peer has probably lost it (it moved: its NAT's public address
// changed), and this node's answers would go down a path that leads
// nowhere. So the path is doubted: Send uses the relay too until the path
// answers a PING, sent now.
func (d *discovery) onRelayedData(e *Endpoint) {
	path := e.direct.Load()
	if path == nil || path.s != d.s || path.doubted.Load() {
		return
	}
	now := time.Now().UnixNano()
	if now-path.lastRecv.Load() < int64(silentFor) || path.doubted.Swap(true) {
		return
	}
	d.probe(e, path, now)
}

// checkSilent is called by Send before it uses e's direct path: if
// nothing came back on the path for silentFor, it probes the path (at
// most once per silentFor), so that a path that died silently stops
// being trusted within probeWait.
func (d *discovery) checkSilent(e *Endpoint, path *directPath, now int64) {
	if now-path.lastRecv.Load() < int64(silentFor) || now-path.lastProbe.Load() < int64(silentFor) {
		return
	}
	d.probe(e, path, now)
}

// probe PINGs e's direct path now and marks it probing: unless a PONG
// comes within probeWait, Send uses the relay too, and the discovery
// loop drops the path after probeTimeout. At most one probe goes out per
// silentFor.
func (d *discovery) probe(e *Endpoint, path *directPath, now int64) {
	last := path.lastProbe.Load()
	if now-last < int64(silentFor) || !path.lastProbe.CompareAndSwap(last, now) {
		return
	}
	path.probing.CompareAndSwap(0, now)
	d.mu.Lock()
	p := d.peers[e.key]
	if p == nil || e.direct.Load() != path {
		d.mu.Unlock()
		return
	}
	p.lastPing = time.Unix(0, now)
	ping := d.pingLocked(p, path.addr, p.lastPing)
	d.mu.Unlock()
	d.sendPings([]pingOut{ping})
}

// isHandshakeInitiation reports whether datagram is a WireGuard handshake
// initiation: message type 1, three zero bytes, 148 bytes in all.
func isHandshakeInitiation(datagram []byte) bool {
	return len(datagram) == 148 && datagram[0] == 1 && datagram[1] == 0 && datagram[2] == 0 && datagram[3] == 0
}

// onRelayed handles a disco message that came through the relay from
// src, whose key the relay vouches for. Only CALLs travel that way.
func (d *discovery) onRelayed(src wire.Key, msg []byte) {
	m, err := ParseDisco(msg)
	if err != nil || m.Type != DiscoCall {
		d.b.logs.logf(slog.LevelDebug, "relay bind: dropped a disco message from the relay", "peer", src.String(), "err", err)
		return
	}
	d.b.log.Debug("disco: call received", "peer", src.String(), "candidates", fmt.Sprint(m.Candidates))
	now := time.Now()
	e := d.b.endpoint(src)
	var pings []pingOut
	answer := false
	d.mu.Lock()
	p := d.peer(e)
	if p.haveTheirs && p.theirs != m.Token {
		// A new token: the peer opened a new socket (it restarted or
		// rebound), so the path this node knows leads nowhere now.
		d.dropLocked(p, slog.LevelInfo, "the peer started discovery afresh")
	}
	p.theirs, p.haveTheirs = m.Token, true
	p.candidates = p.candidates[:0]
	for _, c := range m.Candidates {
		if d.b.usable(c) {
			p.candidates = append(p.candidates, c)
		}
	}
	// Answer with this node's CALL, unless it answered within the last
	// second. A CALL of its own sent just before does not count: it may
	// have been lost (the relay drops what it cannot deliver yet, as
	// when the peer had not registered).
	if now.Sub(p.lastAnswer) >= answerCallsEvery {
		p.lastAnswer, p.lastCall = now, now
		answer = true
	}
	p.probeUntil = now.Add(probeFor)
	// Ping at once, for the hole punching, but not more than once a
	// second however often the peer calls: a peer cannot make this node
	// send faster than the loop would.
	probeNow := now.Sub(p.lastCallIn) >= discoTick
	p.lastCallIn = now
	path := e.direct.Load()
	if probeNow && (path == nil || path.s != d.s) {
		for _, c := range p.candidates {
			pings = append(pings, d.pingLocked(p, c, now))
		}
	}
	d.mu.Unlock()
	if answer {
		d.sendCall(e)
	}
	d.sendPings(pings)
	if path != nil && path.s == d.s && !path.doubted.Swap(true) {
		// The peer CALLs only without a direct path to this node: it
		// may have moved (its NAT's public address changed), so this
		// path may lead nowhere. Send uses the relay too until the
		// path answers a PING.
		d.probe(e, path, now.UnixNano())
	}
}

// onDirect handles a disco message that came straight from addr.
func (d *discovery) onDirect(msg []byte, from netip.AddrPort) {
	m, err := ParseDisco(msg)
	if err != nil {
		d.b.logs.logf(slog.LevelDebug, "relay bind: dropped a malformed disco message", "from", from.String(), "err", err)
		return
	}
	d.b.log.Debug("disco: received", "type", m.Type.String(), "from", from.String())
	now := time.Now()
	switch m.Type {
	case DiscoPing:
		d.mu.Lock()
		p := d.byToken[m.Token]
		if p == nil {
			d.mu.Unlock()
			d.b.logs.logf(slog.LevelDebug, "relay bind: dropped a ping with an unknown token", "from", from.String())
			return
		}
		// The PING came from the peer's side of a hole: ping back
		// there too, so that this side confirms the path as well.
		if !d.b.usable(from) {
			d.mu.Unlock()
			return
		}
		var back []pingOut
		if !containsAddr(p.candidates, from) && len(p.candidates) < 2*maxCandidates {
			p.candidates = append(p.candidates, from)
		}
		if p.heard != from {
			p.heard = from
			d.rebuildLocked()
		}
		// At most once a second, like every other ping: a PING costs
		// its sender as much as the PONG costs this node, but the ping
		// back would not.
		if path := p.ep.direct.Load(); (path == nil || path.s != d.s) && p.haveTheirs && now.Sub(p.lastPingBack) >= discoTick {
			p.lastPingBack = now
			back = append(back, d.pingLocked(p, from, now))
		}
		d.mu.Unlock()
		pong, _ := Disco{Type: DiscoPong, TxID: m.TxID, Observed: from}.Append(nil)
		if _, err := d.s.conn.WriteToUDPAddrPort(pong, from); err != nil && !d.s.closed.Load() {
			d.b.logs.logf(slog.LevelDebug, "relay bind: sending a pong failed", "to", from.String(), "err", err)
		}
		d.sendPings(back)
	case DiscoPong:
		d.mu.Lock()
		defer d.mu.Unlock()
		sent, ok := d.pings[m.TxID]
		if !ok || sent.to != from {
			return
		}
		delete(d.pings, m.TxID)
		p := sent.p
		if path := p.ep.direct.Load(); path != nil && path.s == d.s && path.addr == from {
			path.answered(now.UnixNano())
			return
		}
		d.setLocked(p, from, now.Sub(sent.at))
	default:
		d.b.logs.logf(slog.LevelDebug, "relay bind: dropped a direct disco message of the wrong type", "type", m.Type.String(), "from", from.String())
	}
}

// setLocked makes addr p's direct path. d.mu is held.
func (d *discovery) setLocked(p *peerDisco, addr netip.AddrPort, rtt time.Duration) {
	path := &directPath{s: d.s, addr: addr, udp: net.UDPAddrFromAddrPort(addr), probeWait: max(minProbeWait, 2*rtt)}
	path.answered(time.Now().UnixNano())
	old := p.ep.direct.Swap(path)
	p.lastPing = time.Now()
	d.rebuildLocked()
	if old == nil || old.s != d.s {
		d.b.log.Info("direct path up", "peer", p.ep.key.String(), "addr", addr.String(), "rtt", rtt.Round(time.Microsecond))
	} else {
		d.b.log.Info("direct path moved", "peer", p.ep.key.String(), "addr", addr.String(), "was", old.addr.String())
	}
}

// drop gives up e's direct path, if it is on this socket: Send goes
// through the relay again, and discovery starts afresh.
func (d *discovery) drop(e *Endpoint, why string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p := d.peers[e.key]; p != nil {
		d.dropLocked(p, slog.LevelInfo, why)
	}
}

// dropAll gives up every direct path of this socket and calls the peers
// in use again at once, with or without a path: this node's candidates
// changed.
func (d *discovery) dropAll(why string) {
	d.mu.Lock()
	for _, p := range d.peers {
		d.dropLocked(p, slog.LevelInfo, why)
		p.lastCall, p.callWait = time.Time{}, firstCallWait
	}
	d.mu.Unlock()
	d.wake()
}

// recheck is dropAll for a change that may have left the paths working
// (this node's network changed, but perhaps not its way out): each path
// is doubted and probed, so that Send uses the relay too until the path
// answers, and the loop drops it if it does not; peers in use without a
// path are called again at once, with this node's new candidates.
func (d *discovery) recheck(why string) {
	now := time.Now().UnixNano()
	var probes []*Endpoint
	d.mu.Lock()
	for _, p := range d.peers {
		if path := p.ep.direct.Load(); path != nil && path.s == d.s {
			path.doubted.Store(true)
			path.lastProbe.Store(0)
			probes = append(probes, p.ep)
			continue
		}
		p.lastCall, p.callWait = time.Time{}, firstCallWait
	}
	d.mu.Unlock()
	d.b.log.Debug("disco: checking direct paths again", "why", why, "paths", len(probes))
	for _, e := range probes {
		if path := e.direct.Load(); path != nil {
			d.probe(e, path, now)
		}
	}
	d.wake()
}

// wake makes the loop run a step now.
func (d *discovery) wake() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// dropLocked gives up p's direct path, logging why at level. d.mu is
// held.
func (d *discovery) dropLocked(p *peerDisco, level slog.Level, why string) {
	path := p.ep.direct.Load()
	if path == nil || path.s != d.s || !p.ep.direct.CompareAndSwap(path, nil) {
		return
	}
	p.callWait = firstCallWait
	p.lastCall = time.Time{}
	d.rebuildLocked()
	d.b.log.Log(context.Background(), level, "direct path down; using the relay", "peer", p.ep.key.String(), "addr", path.addr.String(), "why", why)
}

// rebuildLocked replaces byAddr, the addresses whose datagrams are taken
// as a peer's: its confirmed direct path, and where its last valid PING
// came from (WireGuard authenticates what then arrives). d.mu is held.
func (d *discovery) rebuildLocked() {
	m := map[netip.AddrPort]*Endpoint{}
	for _, p := range d.peers {
		if p.heard.IsValid() {
			m[p.heard] = p.ep
		}
	}
	for _, p := range d.peers {
		if path := p.ep.direct.Load(); path != nil && path.s == d.s {
			m[path.addr] = p.ep
		}
	}
	d.byAddr.Store(&m)
}

// close forgets every direct path of this socket.
func (d *discovery) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range d.peers {
		if path := p.ep.direct.Load(); path != nil && path.s == d.s {
			p.ep.direct.CompareAndSwap(path, nil)
		}
	}
	d.byAddr.Store(&map[netip.AddrPort]*Endpoint{})
}

func containsAddr(as []netip.AddrPort, a netip.AddrPort) bool {
	for _, x := range as {
		if x == a {
			return true
		}
	}
	return false
}

// candidates returns this node's addresses for a CALL: where the relay
// sees it (its NAT's public side) and its interfaces' addresses, each
// with the socket's port, leaving out what Exclude refuses.
func (b *Bind) candidates(s *socket) []netip.AddrPort {
	var out []netip.AddrPort
	if a := b.currentAck(b.target.Load()); a != nil && a.s == s && b.usable(a.observed) {
		out = append(out, a.observed)
	}
	port := uint16(s.conn.LocalAddr().(*net.UDPAddr).Port)
	addrs, err := b.listAddrs()
	if err != nil {
		b.logs.logf(slog.LevelDebug, "relay bind: listing interface addresses", "err", err)
	}
	for _, a := range addrs {
		ap := netip.AddrPortFrom(a, port)
		if len(out) < maxCandidates && b.usable(ap) && !containsAddr(out, ap) {
			out = append(out, ap)
		}
	}
	return out
}

// usable reports whether a candidate may be pinged or offered: a unicast
// address that is not loopback or link-local and that Exclude allows
// (the tunnel's own routes must never carry the tunnel).
func (b *Bind) usable(ap netip.AddrPort) bool {
	a := ap.Addr().Unmap()
	switch {
	case !a.IsValid() || ap.Port() == 0:
		return false
	case a.IsLoopback():
		if !b.allowLoopback {
			return false
		}
	case a.IsLinkLocalUnicast() || a.IsMulticast() || a.IsUnspecified():
		return false
	}
	return b.exclude == nil || !b.exclude(a)
}

// interfaceAddrs lists the host's interface addresses.
func interfaceAddrs() ([]netip.Addr, error) {
	ifas, err := net.InterfaceAddrs()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, ifa := range ifas {
		if n, ok := ifa.(*net.IPNet); ok {
			if a, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, a.Unmap())
			}
		}
	}
	return out, nil
}
