package connector

import (
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/warrennet/warren/netstack"
	"github.com/warrennet/warren/overlay/wire"
)

// Flow records: every flow the connector serves is recorded when it ends
// (end), every flow it refuses at once (deny), and handed to a recorder,
// the flow log (overlay/flowlog), which keeps and ships them.

// recorder takes flow records. Record must not block.
type recorder interface {
	Record(rec wire.FlowRecord)
}

// maxReason bounds a record's reason, as the coordinator does.
const maxReason = 300

// flowIDs makes record IDs unique per connector: a random prefix per
// process, so that IDs from before a restart are not reused, and a
// counter.
type flowIDs struct {
	prefix string
	n      atomic.Uint64
}

func newFlowIDs() *flowIDs {
	var b [8]byte
	rand.Read(b[:])
	return &flowIDs{prefix: hex.EncodeToString(b[:]) + "-"}
}

func (g *flowIDs) next() string {
	return g.prefix + strconv.FormatUint(g.n.Add(1), 10)
}

// denialWindow is how long a denial is not recorded again for the same
// source address, destination and protocol: a UDP sender retrying, or a
// scan of one port, is one record a second, not one per packet.
const denialWindow = time.Second

// maxDenialKeys bounds the denials remembered for denialWindow.
const maxDenialKeys = 4096

type denialKey struct {
	src   netip.Addr
	dst   netip.AddrPort
	proto netstack.Proto
}

// denials remembers recent denials.
type denials struct {
	mu   sync.Mutex // guards seen
	seen map[denialKey]time.Time
}

// first reports whether k was not denied within denialWindow before now,
// and remembers it.
func (d *denials) first(k denialKey, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t, ok := d.seen[k]; ok && now.Sub(t) < denialWindow {
		return false
	}
	if len(d.seen) >= maxDenialKeys {
		for key, t := range d.seen {
			if now.Sub(t) >= denialWindow {
				delete(d.seen, key)
			}
		}
		if len(d.seen) >= maxDenialKeys {
			clear(d.seen)
		}
	}
	if d.seen == nil {
		d.seen = make(map[denialKey]time.Time)
	}
	d.seen[k] = now
	return true
}

// deny records a refused flow, unless the same one was refused within
// denialWindow.
func (c *Connector) deny(f netstack.Flow, d decision) {
	c.log.Debug("refusing flow", "flow", f, "reason", d.reason)
	now := time.Now()
	if !c.denied.first(denialKey{f.Src.Addr(), f.Dst, f.Proto}, now) {
		return
	}
	c.records.Record(wire.FlowRecord{
		ID:       c.ids.next(),
		User:     d.client.user,
		Node:     d.client.name,
		Src:      f.Src,
		Dst:      f.Dst,
		Proto:    wireProto(f.Proto),
		Decision: wire.DecisionDeny,
		Reason:   clip(d.reason, maxReason),
		Start:    now,
		End:      now,
	})
}

// clip cuts s to at most n bytes, on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
