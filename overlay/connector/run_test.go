package connector

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/warrennet/warren/overlay/flowlog"
	"github.com/warrennet/warren/overlay/nodestate"
	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/test/coordtest"
)

// sink is a flowlog.Sink that keeps what it is sent.
type sink struct {
	mu     sync.Mutex
	recs   []wire.FlowRecord
	closed bool
}

func (s *sink) ReportFlows(ctx context.Context, recs []wire.FlowRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs = append(s.recs, recs...)
	return nil
}

func (s *sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

func (s *sink) got() ([]wire.FlowRecord, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]wire.FlowRecord(nil), s.recs...), s.closed
}

// TestRunShipsFlowRecords runs a real connector against a real
// coordinator and checks the flow log's wiring: NewSink gets the enrolled
// identity, a denial reaches the Sink within ~200 ms of the flow, the
// spool lives in the state directory, and Run closes the Sink NewSink
// built when it returns.
func TestRunShipsFlowRecords(t *testing.T) {
	s := coordtest.Start(t, coordtest.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	state := t.TempDir()
	sk := &sink{}
	var gotID *nodestate.Identity
	c, err := New(ctx, Config{
		StateDir: state,
		Token:    s.Token(t, wire.CreateTokenRequest{Role: wire.RoleConnector, Name: "office"}).String(),
		NewSink: func(id *nodestate.Identity) (flowlog.Sink, error) {
			gotID = id
			return sk, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if gotID == nil || gotID.Node.Name != "office" || gotID.Credential == "" {
		t.Fatalf("NewSink got identity %+v", gotID)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	waitFor(t, "the first netmap", func() bool { return c.adm.Load() != noAdmission })

	// A SYN from a source that is not an enrolled client, straight into
	// the stack.
	start := time.Now()
	if _, err := c.stack.Write([][]byte{synPacket(netip.MustParseAddrPort("100.96.0.99:4000"), netip.MustParseAddrPort("192.0.2.10:22"))}, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the denial at the sink", func() bool { recs, _ := sk.got(); return len(recs) == 1 })
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("the denial took %v to reach the sink", d)
	}
	recs, _ := sk.got()
	if r := recs[0]; r.Decision != wire.DecisionDeny || r.Src != netip.MustParseAddrPort("100.96.0.99:4000") || r.Proto != wire.ProtoTCP {
		t.Errorf("record %+v", r)
	}
	if _, err := os.Stat(filepath.Join(state, flowSpoolDir)); err != nil {
		t.Errorf("no flow spool in the state directory: %v", err)
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if _, closed := sk.got(); !closed {
		t.Error("Run did not close the Sink NewSink built")
	}
}
