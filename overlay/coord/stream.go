package coord

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrennet/warren/overlay/wire"
)

// NodeConn is one node's control stream, framed by the API layer.
type NodeConn interface {
	// Send writes one message, msg: a wire.StreamMessage encoded as JSON
	// on one line, without the newline. msg may be shared with the
	// node's other streams: Send must not modify it or keep it after it
	// returns. Send fails, rather than blocking for long, when the node
	// stops reading.
	Send(msg []byte) error
	// Recv blocks until the next message arrives or the stream fails.
	// After Close it returns an error promptly.
	Recv() (*wire.StreamMessage, error)
	// Close makes pending and later Recv calls return. Idempotent.
	Close() error
}

// DefaultMaxStreamsPerNode is how many control streams one node may keep
// open at once: its stream, a reconnect overlapping it, and slack. One
// more replaces (ends) the oldest.
const DefaultMaxStreamsPerNode = 4

// Reasons a stream ends.
var (
	ErrNodeRemoved      = errors.New("node was removed")
	ErrHeartbeatTimeout = errors.New("node stopped answering heartbeats")
	ErrStreamReplaced   = errors.New("replaced by a newer stream of the same node")
)

// ServeStream runs one node's control stream until ctx ends, the node is
// removed, the node falls silent for the heartbeat timeout, the node opens
// more streams than the limit and this is the oldest, or the stream fails.
// It sends the node's netmap at once and again after every change that
// alters it, and records the versions the node acknowledges. A client's
// stream also carries the denials connectors report for it.
//
// The netmap is built and encoded once per node and snapshot, and shared
// by the node's streams.
func (c *Coordinator) ServeStream(ctx context.Context, node wire.Node, conn NodeConn) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	st, netmaps := c.streamStarted(node, cancel)
	defer c.streamEnded(node, st)

	watchdog := time.AfterFunc(c.hbTO, func() { cancel(ErrHeartbeatTimeout) })
	defer watchdog.Stop()

	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		c.readStream(node, conn, watchdog, cancel)
	}()
	defer func() {
		conn.Close()
		<-readerDone
	}()

	var denials <-chan wire.FlowRecord // nil, never ready, for a connector
	if node.Role == wire.RoleClient {
		ch, unsubscribe := c.denials.subscribe(node.ID)
		defer unsubscribe()
		denials = ch
	}

	ping := time.NewTicker(c.hbInt)
	defer ping.Stop()
	var sentGen uint64 // the generation of the last netmap sent; 0 is none
	for {
		nm, err := c.latestNetMap(netmaps, node.ID)
		if err != nil {
			return err
		}
		if nm.gen != sentGen {
			if err := conn.Send(nm.line); err != nil {
				return fmt.Errorf("sending netmap: %w", err)
			}
			sentGen = nm.gen
			c.sent(node.ID, nm.version)
		}
		select {
		case <-nm.snap.changed:
		case <-ping.C:
			if err := conn.Send(pingMessage); err != nil {
				return fmt.Errorf("sending heartbeat: %w", err)
			}
		case d := <-denials:
			if err := sendDenials(conn, d, denials); err != nil {
				return err
			}
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// pingMessage is the heartbeat, encoded.
var pingMessage = []byte(`{"type":"ping"}`)

// readStream reads the node's messages until the stream fails, feeding the
// watchdog and recording acknowledgements, then cancels the stream.
func (c *Coordinator) readStream(node wire.Node, conn NodeConn, watchdog *time.Timer, cancel context.CancelCauseFunc) {
	for {
		m, err := conn.Recv()
		if err != nil {
			cancel(fmt.Errorf("reading stream: %w", err))
			return
		}
		if err := m.Validate(); err != nil {
			cancel(fmt.Errorf("reading stream: %w", err))
			return
		}
		watchdog.Reset(c.hbTO)
		c.heard(node.ID, m)
	}
}

// netmapCache is one node's netmap for the latest snapshot it was asked
// for, built and encoded once and shared by the node's streams.
type netmapCache struct {
	// mu guards cur. It is held while a netmap is built and encoded,
	// which calls nothing out, so that the node's other streams wait for
	// that one build instead of making their own.
	mu  sync.Mutex
	cur *builtNetMap
}

// builtNetMap is one node's netmap for one snapshot. Read-only once built.
type builtNetMap struct {
	snap    *snapshot
	version uint64
	// gen counts the changes of content (everything but the version)
	// in this cache, from 1: a stream sends when it changed.
	gen     uint64
	content []byte // the netmap encoded with its version zeroed
	line    []byte // the netmap message, encoded
}

// latestNetMap returns node id's netmap for the current snapshot, building
// it if none of the node's streams has yet.
func (c *Coordinator) latestNetMap(nc *netmapCache, id string) (*builtNetMap, error) {
	nc.mu.Lock()
	defer nc.mu.Unlock()
	s := c.snap.Load()
	prev := nc.cur
	if prev != nil && prev.snap == s {
		return prev, nil
	}
	self, ok := s.node(id)
	if !ok {
		return nil, ErrNodeRemoved
	}
	c.netmapBuilds.Add(1)
	nm := c.netMap(s, self.Node)
	content, err := contentOf(nm)
	if err != nil {
		return nil, err
	}
	b := &builtNetMap{snap: s, version: nm.Version, gen: 1, content: content}
	if prev != nil {
		b.gen = prev.gen
		if !bytes.Equal(content, prev.content) {
			b.gen++
		} else if prev.version == nm.Version {
			b.line = prev.line
		}
	}
	if b.line == nil {
		if b.line, err = json.Marshal(&wire.StreamMessage{Type: wire.MsgNetMap, NetMap: nm}); err != nil {
			return nil, fmt.Errorf("encoding netmap: %w", err)
		}
	}
	nc.cur = b
	return b, nil
}

// contentOf encodes nm without its version, to tell whether a new netmap
// differs from the last one sent.
func contentOf(nm *wire.NetMap) ([]byte, error) {
	v := nm.Version
	nm.Version = 0
	b, err := json.Marshal(nm)
	nm.Version = v
	if err != nil {
		return nil, fmt.Errorf("encoding netmap: %w", err)
	}
	return b, nil
}

// netMap builds self's netmap from s. A client sees every connector, every
// route and its own access-policy grants; a connector sees its own routes
// and every client, with what the policy lets that client reach through
// it.
func (c *Coordinator) netMap(s *snapshot, self wire.Node) *wire.NetMap {
	nm := &wire.NetMap{Version: s.version, Self: self, Peers: []wire.Peer{}, Routes: []wire.Route{}}
	switch self.Role {
	case wire.RoleClient:
		for _, i := range s.connectors {
			n := s.nodes[i]
			nm.Peers = append(nm.Peers, wire.Peer{Node: n.Node, Prefixes: s.prefixesOf(n.Name), Online: s.online[n.ID]})
		}
		nm.Routes = s.routes
		nm.Split = s.split
		nm.Policy = s.clientPolicy(self)
		for _, h := range s.hosts {
			nm.Hosts = append(nm.Hosts, wire.NetMapHost{Name: h.Name, Address: h.Address})
		}
		nm.HostSuffix = c.hostSuffix
		for _, d := range s.dns {
			nm.DNS = append(nm.DNS, wire.NetMapDNS{Domain: d.Domain, Servers: d.Servers})
		}
	case wire.RoleConnector:
		var served []netip.Prefix
		for _, r := range s.routes {
			if r.Connector == self.Name {
				nm.Routes = append(nm.Routes, r)
				served = append(served, r.Prefix)
			}
		}
		nm.Policy.Enforced = s.policy.enforced()
		for _, n := range s.nodes {
			if n.Role == wire.RoleClient {
				nm.Peers = append(nm.Peers, wire.Peer{Node: n.Node, Grants: s.peerGrants(n.Node, served)})
			}
		}
	}
	nm.Relay.Endpoint = c.relay
	if c.relayC != nil {
		nm.Relay.Credential = c.relayC(self)
	}
	return nm
}

// openStream is one of a node's open control streams.
type openStream struct {
	cancel context.CancelCauseFunc
}

// streamStarted records a new stream, whose context cancel ends, and
// returns it with the node's netmap cache. Past the node's stream limit it
// ends the oldest streams. A connector coming online is pushed to the
// clients.
func (c *Coordinator) streamStarted(n wire.Node, cancel context.CancelCauseFunc) (*openStream, *netmapCache) {
	st := &openStream{cancel: cancel}
	c.presenceMu.Lock()
	p := c.presence[n.ID]
	if p == nil {
		p = &presence{}
		c.presence[n.ID] = p
	}
	first := len(p.streams) == 0
	p.streams = append(p.streams, st)
	var replaced []*openStream
	if over := len(p.streams) - c.maxStreams; over > 0 {
		replaced = slices.Clone(p.streams[:over])
		p.streams = slices.Delete(p.streams, 0, over)
	}
	if p.netmaps == nil {
		p.netmaps = &netmapCache{}
	}
	netmaps := p.netmaps
	p.lastSeen = c.now().UTC()
	c.dirtySeen[n.ID] = p.lastSeen
	c.presenceMu.Unlock()
	for _, old := range replaced {
		old.cancel(ErrStreamReplaced)
	}
	if len(replaced) > 0 {
		c.log.Warn("node opened more control streams than allowed; the oldest replaced", "node", n.Name, "limit", c.maxStreams)
	}
	if first && n.Role == wire.RoleConnector {
		c.publishPresence()
	}
	c.log.Info("node connected", "node", n.Name, "role", n.Role)
	return st, netmaps
}

func (c *Coordinator) streamEnded(n wire.Node, st *openStream) {
	c.presenceMu.Lock()
	p := c.presence[n.ID]
	last := false
	if i := slices.Index(p.streams, st); i >= 0 {
		p.streams = slices.Delete(p.streams, i, i+1)
		last = len(p.streams) == 0
	}
	if last {
		p.netmaps = nil
	}
	p.lastSeen = c.now().UTC()
	c.dirtySeen[n.ID] = p.lastSeen
	c.presenceMu.Unlock()
	if last && n.Role == wire.RoleConnector {
		c.publishPresence()
	}
	c.log.Info("node disconnected", "node", n.Name, "role", n.Role)
}

// publishPresence republishes the snapshot with the connectors that are
// online now. The state version does not change.
func (c *Coordinator) publishPresence() {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	s := c.snap.Load()
	online := make(map[string]bool)
	c.presenceMu.Lock()
	for _, n := range s.nodes {
		if p := c.presence[n.ID]; n.Role == wire.RoleConnector && p != nil && len(p.streams) > 0 {
			online[n.ID] = true
		}
	}
	c.presenceMu.Unlock()
	next, err := s.with(s.version, nil, nil, nil, nil, online)
	if err != nil {
		c.log.Error("publishing presence", "err", err)
		return
	}
	c.publish(next)
}

func (c *Coordinator) sent(id string, version uint64) {
	c.presenceMu.Lock()
	defer c.presenceMu.Unlock()
	if p := c.presence[id]; p != nil {
		p.sent = version
	}
}

func (c *Coordinator) heard(id string, m *wire.StreamMessage) {
	c.presenceMu.Lock()
	defer c.presenceMu.Unlock()
	p := c.presence[id]
	if p == nil {
		return
	}
	p.lastSeen = c.now().UTC()
	c.dirtySeen[id] = p.lastSeen
	if m.Type == wire.MsgAck {
		p.applied = m.Version
	}
}

// connected reports how many streams are open, for tests and metrics.
func (c *Coordinator) connected() int {
	var n atomic.Int64
	c.presenceMu.Lock()
	for _, p := range c.presence {
		n.Add(int64(len(p.streams)))
	}
	c.presenceMu.Unlock()
	return int(n.Load())
}
