package coord

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/warrennet/warren/overlay/wire"
)

// TestStreamCapReplacesOldest: a node may keep DefaultMaxStreamsPerNode
// streams; each one more ends the oldest still open, and only it.
func TestStreamCapReplacesOldest(t *testing.T) {
	h := newHarness(t)
	laptop := h.enroll(wire.RoleClient, "laptop")
	const extra = 2
	var done []<-chan error
	for i := range DefaultMaxStreamsPerNode + extra {
		lc := newFakeConn()
		done = append(done, h.serve(laptop.Node, lc))
		nextNetMap(t, lc)
		if i < DefaultMaxStreamsPerNode {
			continue
		}
		// Stream i+1 replaces the oldest one still open, number i-4.
		select {
		case err := <-done[i-DefaultMaxStreamsPerNode]:
			if !errors.Is(err, ErrStreamReplaced) {
				t.Errorf("stream %d ended with %v, want ErrStreamReplaced", i-DefaultMaxStreamsPerNode+1, err)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("stream %d still open 2s after stream %d opened", i-DefaultMaxStreamsPerNode+1, i+1)
		}
	}
	for i, d := range done[extra:] {
		select {
		case err := <-d:
			t.Errorf("stream %d ended: %v; want the newest %d open", i+extra+1, err, DefaultMaxStreamsPerNode)
		default:
		}
	}
	eventually(t, time.Second, "streams open", func() bool { return h.c.connected() == DefaultMaxStreamsPerNode })
	if n := h.c.Nodes(); !n[0].Online {
		t.Error("laptop offline with streams open")
	}
}

// TestStreamFanOutBuildsOncePerNode: after a change, a node's netmap is
// built (and encoded) once, whatever the number of its streams.
func TestStreamFanOutBuildsOncePerNode(t *testing.T) {
	h := newHarness(t)
	office := h.enroll(wire.RoleConnector, "office")
	laptop := h.enroll(wire.RoleClient, "laptop")
	streams := map[string]int{"office": 2, "laptop": DefaultMaxStreamsPerNode}
	var conns []*fakeConn
	for _, n := range []wire.Node{office.Node, laptop.Node} {
		for range streams[n.Name] {
			c := newFakeConn()
			h.serve(n, c)
			nextNetMap(t, c)
			conns = append(conns, c)
		}
	}
	settled := func() bool {
		s := h.c.snap.Load()
		h.c.presenceMu.Lock()
		defer h.c.presenceMu.Unlock()
		for _, p := range h.c.presence {
			p.netmaps.mu.Lock()
			cur := p.netmaps.cur
			p.netmaps.mu.Unlock()
			if cur == nil || cur.snap != s {
				return false
			}
		}
		return true
	}
	eventually(t, 2*time.Second, "streams settled", settled)
	before := h.c.netmapBuilds.Load()

	if _, err := h.c.AddRoute(context.Background(), wire.AddRouteRequest{Prefix: "10.1.0.0/16", Connector: "office"}); err != nil {
		t.Fatal(err)
	}
	for i, c := range conns {
		for {
			nm := nextNetMap(t, c)
			if len(nm.Routes) == 1 {
				break
			}
			t.Logf("stream %d: netmap without the route first", i)
		}
	}
	eventually(t, 2*time.Second, "streams settled", settled)
	if got, want := h.c.netmapBuilds.Load()-before, int64(len(streams)); got != want {
		t.Errorf("netmaps built for one change = %d, want %d (one per node, %d streams)", got, want, len(conns))
	}
}
