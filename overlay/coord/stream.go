package coord

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/warrennet/warren/overlay/wire"
)

// NodeConn is one node's control stream, framed by the API layer.
type NodeConn interface {
	// Send writes one message. It fails, rather than blocking for long,
	// when the node stops reading.
	Send(m *wire.StreamMessage) error
	// Recv blocks until the next message arrives or the stream fails.
	// After Close it returns an error promptly.
	Recv() (*wire.StreamMessage, error)
	// Close makes pending and later Recv calls return. Idempotent.
	Close() error
}

// Reasons a stream ends.
var (
	ErrNodeRemoved      = errors.New("node was removed")
	ErrHeartbeatTimeout = errors.New("node stopped answering heartbeats")
)

// ServeStream runs one node's control stream until ctx ends, the node is
// removed, the node falls silent for the heartbeat timeout, or the stream
// fails. It sends the node's netmap at once and again after every change
// that alters it, and records the versions the node acknowledges. A
// client's stream also carries the denials connectors report for it.
func (c *Coordinator) ServeStream(ctx context.Context, node wire.Node, conn NodeConn) error {
	c.streamStarted(node)
	defer c.streamEnded(node)

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
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
	var last []byte // the last netmap sent, with its version zeroed
	for {
		s := c.snap.Load()
		self, ok := s.node(node.ID)
		if !ok {
			return ErrNodeRemoved
		}
		nm := c.netMap(s, self.Node)
		body, err := contentOf(nm)
		if err != nil {
			return err
		}
		if !bytes.Equal(body, last) {
			if err := conn.Send(&wire.StreamMessage{Type: wire.MsgNetMap, NetMap: nm}); err != nil {
				return fmt.Errorf("sending netmap: %w", err)
			}
			last = body
			c.sent(node.ID, nm.Version)
		}
		select {
		case <-s.changed:
		case <-ping.C:
			if err := conn.Send(&wire.StreamMessage{Type: wire.MsgPing}); err != nil {
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

// streamStarted records a new stream; a connector coming online is pushed
// to the clients.
func (c *Coordinator) streamStarted(n wire.Node) {
	c.presenceMu.Lock()
	p := c.presence[n.ID]
	if p == nil {
		p = &presence{}
		c.presence[n.ID] = p
	}
	p.streams++
	p.lastSeen = c.now().UTC()
	c.dirtySeen[n.ID] = p.lastSeen
	first := p.streams == 1
	c.presenceMu.Unlock()
	if first && n.Role == wire.RoleConnector {
		c.publishPresence()
	}
	c.log.Info("node connected", "node", n.Name, "role", n.Role)
}

func (c *Coordinator) streamEnded(n wire.Node) {
	c.presenceMu.Lock()
	p := c.presence[n.ID]
	p.streams--
	p.lastSeen = c.now().UTC()
	c.dirtySeen[n.ID] = p.lastSeen
	last := p.streams == 0
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
		if p := c.presence[n.ID]; n.Role == wire.RoleConnector && p != nil && p.streams > 0 {
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
		n.Add(int64(p.streams))
	}
	c.presenceMu.Unlock()
	return int(n.Load())
}
