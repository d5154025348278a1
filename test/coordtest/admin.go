package coordtest

import (
	"context"
	"fmt"
	"testing"

	"github.com/warrennet/warren/overlay/wire"
)

// The admin's changes, made directly through the coordinator, and what it
// knows of a node. Each fails the test if the coordinator refuses.

// AddRoute routes prefix to the named connector, which must be enrolled.
func (s *Server) AddRoute(t testing.TB, prefix, connector string) wire.Route {
	t.Helper()
	r, err := s.Coord.AddRoute(context.Background(), wire.AddRouteRequest{Prefix: prefix, Connector: connector})
	if err != nil {
		t.Fatalf("adding route %s: %v", prefix, err)
	}
	return r
}

// AddHost names an address for the access policy.
func (s *Server) AddHost(t testing.TB, name, addr string) {
	t.Helper()
	if _, err := s.Coord.AddHost(context.Background(), wire.AddHostRequest{Name: name, Address: addr}); err != nil {
		t.Fatalf("adding host %s: %v", name, err)
	}
}

// SetPolicy sets the access-policy document and returns the state
// version that carries it.
func (s *Server) SetPolicy(t testing.TB, doc string) uint64 {
	t.Helper()
	if _, err := s.Coord.SetPolicy(context.Background(), wire.SetPolicyRequest{Document: doc}); err != nil {
		t.Fatalf("setting the access policy: %v", err)
	}
	return s.Coord.Version()
}

// Push makes a change every client's netmap shows (a split-tunnel exclude
// entry of its own) and returns the state version that carries it.
// Connectors' netmaps do not change.
func (s *Server) Push(t testing.TB) uint64 {
	t.Helper()
	n := s.pushes
	s.pushes++
	p := fmt.Sprintf("198.18.%d.%d/32", n/256, n%256)
	if _, err := s.Coord.AddSplitEntry(context.Background(), wire.SplitEntryRequest{Prefix: p, Comment: "coordtest push"}); err != nil {
		t.Fatalf("pushing a change: %v", err)
	}
	return s.Coord.Version()
}

// ReportFlows reports recs as the named connector does over the API: the
// coordinator stores them and pushes each denial to the client it names.
func (s *Server) ReportFlows(t testing.TB, connector string, recs ...wire.FlowRecord) {
	t.Helper()
	n, ok := s.node(connector)
	if !ok {
		t.Fatalf("reporting flows: no node named %q", connector)
	}
	if err := s.Coord.ReportFlows(context.Background(), n.Node, recs); err != nil {
		t.Fatalf("reporting flows: %v", err)
	}
}

// Acked returns the netmap version the named node last acknowledged, 0
// if it never did or is not enrolled.
func (s *Server) Acked(name string) uint64 {
	n, _ := s.node(name)
	return n.AppliedVersion
}

// Online reports whether the named node holds a control stream.
func (s *Server) Online(name string) bool {
	n, _ := s.node(name)
	return n.Online
}

func (s *Server) node(name string) (wire.NodeStatus, bool) {
	for _, n := range s.Coord.Nodes() {
		if n.Name == name {
			return n, true
		}
	}
	return wire.NodeStatus{}, false
}
