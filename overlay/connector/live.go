package connector

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrennet/warren/netstack"
	"github.com/warrennet/warren/overlay/wire"
)

// Live flows.
//
// Every TCP and UDP flow the connector serves is in the registry from its
// admission to its end, with its decision, its byte counters and a way to
// cut it. A new netmap (a policy change, a client removed) is installed
// under the registry's lock, and every live flow is then decided again
// against it: those no longer allowed are cut at once, before apply
// returns (TCP: a reset to both ends; UDP: both sockets closed).
//
// Admission takes the same lock, so a flow is never admitted under a
// state that an install has already replaced and re-checked: either the
// install sees the flow, or the flow sees the install's state.

// errCut ends a live flow's context when it is cut.
var errCut = errors.New("flow cut")

// liveFlow is one flow the connector serves.
type liveFlow struct {
	id    string
	f     netstack.Flow
	d     decision
	start time.Time
	// meter counts the bytes: AToB from the client to the LAN host, BToA
	// back.
	meter netstack.Meter
	// ctx ends when the flow is cut or the stack closes.
	ctx    context.Context
	cancel context.CancelCauseFunc
	cut    atomic.Pointer[string] // why it was cut, if it was
}

// abort cuts the flow for why; the first reason given is kept.
func (lf *liveFlow) abort(why string) {
	lf.cut.CompareAndSwap(nil, &why)
	lf.cancel(errCut)
}

// record is the flow as a record; End is zero while it lives.
func (lf *liveFlow) record() wire.FlowRecord {
	c := lf.meter.Counts()
	return wire.FlowRecord{
		ID:        lf.id,
		User:      lf.d.client.user,
		Node:      lf.d.client.name,
		Src:       lf.f.Src,
		Dst:       lf.f.Dst,
		Proto:     wireProto(lf.f.Proto),
		Decision:  wire.DecisionAllow,
		Rule:      lf.d.rule,
		Reason:    lf.d.reason,
		Start:     lf.start,
		BytesUp:   uint64(max(c.AToB, 0)),
		BytesDown: uint64(max(c.BToA, 0)),
	}
}

// registry holds the live flows.
type registry struct {
	// mu guards flows, and is held while a flow is admitted and while
	// install swaps the admission state (see above).
	mu    sync.Mutex
	flows map[string]*liveFlow
}

// begin admits f under the current admission state and, if it is
// allowed, registers it; ctx is the handler's. A denial is recorded here;
// the caller refuses the flow when lf is nil.
func (c *Connector) begin(ctx context.Context, f netstack.Flow) (*liveFlow, decision) {
	c.live.mu.Lock()
	d := admit(c.adm.Load(), f)
	var lf *liveFlow
	if d.allow {
		lf = &liveFlow{id: c.ids.next(), f: f, d: d, start: time.Now()}
		lf.ctx, lf.cancel = context.WithCancelCause(ctx)
		c.live.flows[lf.id] = lf
	}
	c.live.mu.Unlock()
	if lf == nil {
		c.deny(f, d)
	}
	return lf, d
}

// end unregisters lf and records it. note, if not empty, says how it
// ended when that is worth a record's reason: the dial failed, it was
// cut.
func (c *Connector) end(lf *liveFlow, note string) {
	lf.cancel(nil)
	c.live.mu.Lock()
	delete(c.live.flows, lf.id)
	c.live.mu.Unlock()
	rec := lf.record()
	rec.End = time.Now()
	if why := lf.cut.Load(); why != nil {
		note = "cut: " + *why
	}
	if note != "" {
		rec.Reason = clip(rec.Reason+"; "+note, maxReason)
	}
	c.records.Record(rec)
}

// install makes a the admission state and cuts the live flows it no
// longer allows. It returns how many it cut.
func (c *Connector) install(a *admission) int {
	c.live.mu.Lock()
	c.adm.Store(a)
	flows := make([]*liveFlow, 0, len(c.live.flows))
	for _, lf := range c.live.flows {
		flows = append(flows, lf)
	}
	c.live.mu.Unlock()
	cut := 0
	for _, lf := range flows {
		if d := admit(a, lf.f); !d.allow {
			lf.abort(d.reason)
			cut++
		}
	}
	return cut
}

// LiveFlows returns the flows the connector is serving now, oldest
// first, as records with End zero and the bytes moved so far.
func (c *Connector) LiveFlows() []wire.FlowRecord {
	c.live.mu.Lock()
	out := make([]wire.FlowRecord, 0, len(c.live.flows))
	for _, lf := range c.live.flows {
		out = append(out, lf.record())
	}
	c.live.mu.Unlock()
	slices.SortFunc(out, func(a, b wire.FlowRecord) int {
		return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// AbortFlow cuts the live flow with the given ID (TCP: a reset to both
// ends; UDP: both sockets closed), giving why as the reason its record
// shows. It reports whether such a flow was live.
func (c *Connector) AbortFlow(id, why string) bool {
	c.live.mu.Lock()
	lf := c.live.flows[id]
	c.live.mu.Unlock()
	if lf == nil {
		return false
	}
	lf.abort(why)
	return true
}
