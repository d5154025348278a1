package coord

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/warrennet/warren/overlay/coord/store"
	"github.com/warrennet/warren/overlay/wire"
)

// DefaultFlowRetention is how long flow records are kept unless
// Config.FlowRetention says otherwise.
const DefaultFlowRetention = 30 * 24 * time.Hour

// flowPruneInterval is how often Run deletes flow records past retention.
const flowPruneInterval = time.Hour

// Bounds of an admin's flow query.
const (
	DefaultFlowLimit = 1000
	MaxFlowLimit     = 10000
)

// denialBuffer is how many denials wait for one control stream; more are
// dropped, so a client that reads slowly never holds up a connector's
// report.
const denialBuffer = 64

// FlowQuery selects flow records for an admin. Zero fields select
// everything.
type FlowQuery struct {
	// User selects the records of exactly this user.
	User string
	// Dest selects the records whose destination address it contains.
	Dest netip.Prefix
	// Since selects the records that started at most this long ago.
	Since time.Duration
	// DeniedOnly selects the denials.
	DeniedOnly bool
	// Limit bounds the number of records: zero means DefaultFlowLimit,
	// and it may not exceed MaxFlowLimit.
	Limit int
}

// CanReportFlows refuses a node that may not report flows: only
// connectors see flows. The API asks before it reads a report's body.
func CanReportFlows(node wire.Node) error {
	if node.Role != wire.RoleConnector {
		return errorf(wire.CodeUnauthorized, "only connectors report flows; %q is a %s", node.Name, node.Role)
	}
	return nil
}

// ReportFlows stores the flow records a connector reports, each as
// reported by node (their Connector field is overwritten), and pushes
// every denial not stored before to the control streams of the client it
// names. Records the connector has already reported (by ID) are ignored,
// so a batch may be sent again safely. Only connectors may report; the
// batch is refused whole if any record is invalid.
func (c *Coordinator) ReportFlows(ctx context.Context, node wire.Node, recs []wire.FlowRecord) error {
	if err := CanReportFlows(node); err != nil {
		return err
	}
	if err := (wire.FlowReport{Records: recs}).Validate(); err != nil {
		return invalid(err)
	}
	stored, err := c.store.InsertFlows(ctx, node.Name, recs)
	if err != nil {
		return fmt.Errorf("storing flow report: %w", err)
	}
	s := c.snap.Load()
	dropped := 0
	for _, r := range stored {
		if r.Decision != wire.DecisionDeny {
			continue
		}
		i, ok := s.byName[r.Node]
		if !ok || s.nodes[i].Role != wire.RoleClient {
			continue
		}
		dropped += c.denials.publish(s.nodes[i].ID, r)
	}
	if dropped > 0 {
		c.log.Debug("denials not pushed: client streams full", "connector", node.Name, "dropped", dropped)
	}
	return nil
}

// Flows returns the flow records q selects, newest first.
func (c *Coordinator) Flows(ctx context.Context, q FlowQuery) ([]wire.FlowRecord, error) {
	switch {
	case q.Limit < 0 || q.Limit > MaxFlowLimit:
		return nil, errorf(wire.CodeInvalid, "limit %d is not between 1 and %d", q.Limit, MaxFlowLimit)
	case q.Since < 0:
		return nil, errorf(wire.CodeInvalid, "since %v is negative", q.Since)
	}
	sq := store.FlowQuery{User: q.User, Dest: q.Dest.Masked(), DeniedOnly: q.DeniedOnly, Limit: q.Limit}
	if sq.Limit == 0 {
		sq.Limit = DefaultFlowLimit
	}
	if q.Since > 0 {
		sq.Since = c.now().Add(-q.Since)
	}
	recs, err := c.store.QueryFlows(ctx, sq)
	if err != nil {
		return nil, fmt.Errorf("reading flows: %w", err)
	}
	return recs, nil
}

// pruneFlows deletes the flow records past retention.
func (c *Coordinator) pruneFlows(ctx context.Context) {
	before := c.now().Add(-c.flowRetention)
	n, err := c.store.PruneFlows(ctx, before)
	if err != nil {
		c.log.Warn("pruning the flow log", "before", before, "deleted", n, "err", err)
		return
	}
	if n > 0 {
		c.log.Info("pruned the flow log", "before", before, "deleted", n)
	}
}

// sendDenials sends d, then every denial already queued behind it, on a
// client's control stream.
func sendDenials(conn NodeConn, d wire.FlowRecord, queue <-chan wire.FlowRecord) error {
	for {
		msg, err := json.Marshal(&wire.StreamMessage{Type: wire.MsgDenial, Denial: &d})
		if err != nil {
			return fmt.Errorf("encoding denial: %w", err)
		}
		if err := conn.Send(msg); err != nil {
			return fmt.Errorf("sending denial: %w", err)
		}
		select {
		case d = <-queue:
		default:
			return nil
		}
	}
}

// denialHub hands denials to the control streams of the clients they
// name. Its zero value is ready to use.
type denialHub struct {
	// mu guards subs. Held only for map edits and copies: sends happen
	// after it is released.
	mu   sync.Mutex
	subs map[string]map[chan wire.FlowRecord]struct{} // by node ID
}

// subscribe returns a channel that receives the denials of node id, and a
// function that stops them. The channel is never closed.
func (h *denialHub) subscribe(id string) (<-chan wire.FlowRecord, func()) {
	ch := make(chan wire.FlowRecord, denialBuffer)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs == nil {
		h.subs = make(map[string]map[chan wire.FlowRecord]struct{})
	}
	if h.subs[id] == nil {
		h.subs[id] = make(map[chan wire.FlowRecord]struct{})
	}
	h.subs[id][ch] = struct{}{}
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.subs[id], ch)
		if len(h.subs[id]) == 0 {
			delete(h.subs, id)
		}
	}
}

// publish offers r to every stream of node id without waiting, and
// returns how many streams were too full to take it.
func (h *denialHub) publish(id string, r wire.FlowRecord) (dropped int) {
	h.mu.Lock()
	chans := make([]chan wire.FlowRecord, 0, len(h.subs[id]))
	for ch := range h.subs[id] {
		chans = append(chans, ch)
	}
	h.mu.Unlock()
	for _, ch := range chans {
		select {
		case ch <- r:
		default:
			dropped++
		}
	}
	return dropped
}
