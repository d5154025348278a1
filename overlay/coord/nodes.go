package coord

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/warrennet/warren/overlay/coord/store"
	"github.com/warrennet/warren/overlay/wire"
)

// Nodes lists every enrolled node with its presence, sorted by name.
func (c *Coordinator) Nodes() []wire.NodeStatus {
	s := c.snap.Load()
	out := make([]wire.NodeStatus, len(s.nodes))
	c.presenceMu.Lock()
	defer c.presenceMu.Unlock()
	for i, n := range s.nodes {
		st := wire.NodeStatus{Node: n.Node, EnrolledAt: n.EnrolledAt, LastSeen: n.LastSeen}
		if p := c.presence[n.ID]; p != nil {
			st.Online = len(p.streams) > 0
			seen := p.lastSeen
			st.LastSeen = &seen
			st.AppliedVersion = p.applied
			st.InSync = p.sent != 0 && p.applied == p.sent
		}
		out[i] = st
	}
	return out
}

// RemoveNode removes the node with this name: its credential stops working
// at once, its control stream is closed, and it leaves every peer's
// netmap. Routes to a removed connector stay and serve again when a
// connector of that name enrolls.
func (c *Coordinator) RemoveNode(ctx context.Context, name string) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	s := c.snap.Load()
	i, ok := s.byName[name]
	if !ok {
		return errorf(wire.CodeNotFound, "no node named %q (see: warren nodes ls)", name)
	}
	n := s.nodes[i]
	err := c.removeNodeAt(ctx, s, i)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(wire.CodeNotFound, "no node named %q (see: warren nodes ls)", name)
	}
	if err != nil {
		return err
	}
	c.log.Info("node removed", "node", name, "role", n.Role)
	return nil
}

// removeNodeAt removes s.nodes[i] from the store and publishes the
// snapshot without it. Call with writeMu held, s the current snapshot.
func (c *Coordinator) removeNodeAt(ctx context.Context, s *snapshot, i int) error {
	n := s.nodes[i]
	version, err := c.store.DeleteNode(ctx, n.ID)
	if err != nil {
		return fmt.Errorf("removing node: %w", err)
	}
	online := s.online
	if online[n.ID] {
		online = cloneWithout(online, n.ID)
	}
	next, err := s.with(version, nil, deleteAt(s.nodes, i), nil, nil, online)
	if err != nil {
		return err
	}
	c.publish(next)
	return nil
}

// Logout removes the calling client, as `warren logout` asks: its
// credential stops working at once and it leaves every netmap. A
// connector cannot log out (an admin removes it).
func (c *Coordinator) Logout(ctx context.Context, node wire.Node) error {
	if node.Role != wire.RoleClient {
		return errorf(wire.CodeUnauthorized, "only clients log out; %q is a %s (an admin removes it with: warren nodes rm %s)", node.Name, node.Role, node.Name)
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	s := c.snap.Load()
	i, ok := s.byID[node.ID]
	if !ok {
		return errorf(wire.CodeUnauthorized, "this node has been removed already")
	}
	if err := c.removeNodeAt(ctx, s, i); err != nil {
		return err
	}
	c.log.Info("node logged out", "node", node.Name, "user", node.User)
	return nil
}

// Export returns every durable fact, secrets excluded.
func (c *Coordinator) Export() wire.Export {
	s := c.snap.Load()
	e := wire.Export{Version: s.version, Tokens: c.Tokens(), Nodes: make([]wire.Node, len(s.nodes)), Routes: c.Routes(), Split: s.split, Hosts: c.Hosts(), DNS: c.DNS()}
	if s.policy.doc != nil {
		e.Policy = s.policy.doc.Text
	}
	for i, n := range s.nodes {
		e.Nodes[i] = n.Node
	}
	for _, u := range s.wireUsers() {
		if u.Source == wire.UserSourceSSO {
			e.Users = append(e.Users, u)
		}
	}
	return e
}

func (c *Coordinator) online(id string) bool {
	c.presenceMu.Lock()
	defer c.presenceMu.Unlock()
	p := c.presence[id]
	return p != nil && len(p.streams) > 0
}

// lastSeen is the latest time the node was heard from, zero if never.
func (c *Coordinator) lastSeen(n store.Node) time.Time {
	c.presenceMu.Lock()
	defer c.presenceMu.Unlock()
	if p := c.presence[n.ID]; p != nil {
		return p.lastSeen
	}
	if n.LastSeen != nil {
		return *n.LastSeen
	}
	return time.Time{}
}

func cloneWithout(m map[string]bool, k string) map[string]bool {
	out := make(map[string]bool, len(m))
	for key, v := range m {
		if key != k {
			out[key] = v
		}
	}
	return out
}
