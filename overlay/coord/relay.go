package coord

import "github.com/warrennet/warren/overlay/wire"

// RelayAllowed is the relay's policy: it may carry datagrams between two
// nodes only while both are enrolled and one is a client and the other a
// connector. Removing a node cuts it off at the relay at once.
func (c *Coordinator) RelayAllowed(src, dst wire.Key) bool {
	s := c.snap.Load()
	i, ok := s.byKey[src]
	if !ok {
		return false
	}
	j, ok := s.byKey[dst]
	if !ok {
		return false
	}
	a, b := s.nodes[i].Role, s.nodes[j].Role
	return a == wire.RoleClient && b == wire.RoleConnector || a == wire.RoleConnector && b == wire.RoleClient
}
