package flowtrack

import (
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/tun"
)

// DefaultMaxFlows bounds the flows a Device remembers unless told
// otherwise. A full table evicts its longest idle flows.
const DefaultMaxFlows = 1 << 16

// Config configures a Device.
type Config struct {
	// MaxFlows bounds the flows remembered; zero means DefaultMaxFlows.
	MaxFlows int
	// Logger receives a rate-limited line about dropped packets; nil
	// discards it.
	Logger *slog.Logger
}

// Stats are a Device's counters.
type Stats struct {
	// Flows is how many flows the laptop opened are remembered.
	Flows int `json:"flows"`
	// Dropped counts the packets from the tunnel that answered none.
	Dropped uint64 `json:"dropped"`
}

// Sweep and log pacing.
const (
	// sweepEvery is how often Read sweeps one shard of idle flows, so
	// each shard is swept every numShards*sweepEvery.
	sweepEvery = time.Second
	// logEvery is how often a drop is logged.
	logEvery = time.Minute
)

// Device wraps the TUN wireguard-go writes to and reads from. Read
// records the flows the laptop opens; Write lets through only the packets
// that answer them. Every other method is the wrapped device's, Close
// included: a Device holds nothing of its own to release.
//
// Read and Write may be called concurrently, and Write from several
// goroutines at once (wireguard-go writes each peer's packets from that
// peer's goroutine).
type Device struct {
	tun.Device

	log   *slog.Logger
	flows *table
	frags frags
	// clock returns nanoseconds on a monotonic clock; tests replace it.
	clock func() int64

	dropped   atomic.Uint64
	nextSweep atomic.Int64
	sweepIdx  atomic.Uint32
	nextLog   atomic.Int64
}

// New wraps dev.
func New(dev tun.Device, cfg Config) *Device {
	if cfg.MaxFlows <= 0 {
		cfg.MaxFlows = DefaultMaxFlows
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	epoch := time.Now()
	return &Device{
		Device: dev,
		log:    cfg.Logger,
		flows:  newTable(cfg.MaxFlows),
		clock:  func() int64 { return int64(time.Since(epoch)) },
	}
}

// Stats returns the counters.
func (d *Device) Stats() Stats {
	return Stats{Flows: d.flows.len(), Dropped: d.dropped.Load()}
}

// Read reads packets from the wrapped device, as tun.Device.Read does,
// and records the flow of each: a TCP or UDP 5-tuple, or an ICMP echo
// request's identifier. It passes every packet on unchanged.
func (d *Device) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n, err := d.Device.Read(bufs, sizes, offset)
	if n > 0 {
		d.outbound(bufs[:n], sizes, offset)
	}
	return n, err
}

// outbound records the flows of the packets the laptop sent.
func (d *Device) outbound(bufs [][]byte, sizes []int, offset int) {
	now := d.clock()
	// Packets of one flow come in runs: a batch is often one flow.
	var last flowKey
	haveLast := false
	var p packet
	for i, b := range bufs {
		if sizes[i] < 1 || offset+sizes[i] > len(b) {
			continue
		}
		parse(b[offset:offset+sizes[i]], &p)
		if p.kind != kindFlow && p.kind != kindEchoRequest {
			continue
		}
		if haveLast && !p.closing && p.key == last {
			continue
		}
		d.flows.touch(&p.key, now, p.closing)
		last, haveLast = p.key, true
	}
	if next := d.nextSweep.Load(); now >= next && d.nextSweep.CompareAndSwap(next, now+int64(sweepEvery)) {
		d.flows.sweep(int(d.sweepIdx.Add(1)), now)
	}
}

// Write writes to the wrapped device the packets of bufs (each from
// offset on) that answer a flow the laptop opened: the reverse of a
// recorded TCP or UDP flow, an echo reply to a recorded echo request, or
// an ICMP error quoting a packet of a recorded flow (the laptop's own).
// It drops and counts every other packet.
//
// Write may reorder the elements of bufs: the packets it passes on come
// first. It returns len(bufs) once the wrapped device has written those
// (a dropped packet is consumed like a written one), or what the wrapped
// device returned with its error.
func (d *Device) Write(bufs [][]byte, offset int) (int, error) {
	now := d.clock()
	var c cache
	var p packet
	kept := 0
	var example []byte
	for i, b := range bufs {
		if offset > len(b) || !d.inbound(b[offset:], now, &c, &p) {
			if example == nil && offset <= len(b) {
				example = b[offset:]
			}
			continue
		}
		bufs[kept], bufs[i] = bufs[i], bufs[kept]
		kept++
	}
	if dropped := len(bufs) - kept; dropped > 0 {
		d.noteDrops(dropped, example, now)
	}
	if kept == 0 {
		return len(bufs), nil
	}
	n, err := d.Device.Write(bufs[:kept], offset)
	if err != nil {
		return n, err
	}
	return len(bufs), nil
}

// cache remembers the last flow looked up within one Write: the packets
// of a batch mostly belong to one flow.
type cache struct {
	key   flowKey
	e     *entry // nil: no live flow
	valid bool
}

// inbound decides one packet from the tunnel; p is scratch space.
func (d *Device) inbound(b []byte, now int64, c *cache, p *packet) bool {
	parse(b, p)
	var e *entry
	switch p.kind {
	case kindFlow, kindEchoReply:
		p.key.reverse()
		if e = d.lookup(&p.key, now, c); e == nil {
			return false
		}
		if p.closing && !e.closing.Load() {
			e.closing.Store(true)
		}
	case kindICMPError:
		// The quoted packet must be one the laptop sent.
		if p.key.src != p.dst {
			return false
		}
		if e = d.lookup(&p.key, now, c); e == nil {
			return false
		}
	case kindFragment:
		return d.frags.allowed(&p.frag, now)
	default:
		return false
	}
	if p.fragmented {
		d.frags.allow(&p.frag, now)
	}
	return true
}

// lookup finds the live flow k through c, and marks it used now.
func (d *Device) lookup(k *flowKey, now int64, c *cache) *entry {
	if c.valid && c.key == *k {
		return c.e
	}
	e := d.flows.lookup(k, now)
	if e != nil {
		e.last.Store(now)
	}
	*c = cache{key: *k, e: e, valid: true}
	return e
}

// noteDrops counts dropped packets and logs, at most once every logEvery,
// one of them.
func (d *Device) noteDrops(n int, example []byte, now int64) {
	total := d.dropped.Add(uint64(n))
	if next := d.nextLog.Load(); now >= next && d.nextLog.CompareAndSwap(next, now+int64(logEvery)) {
		d.log.Info("dropped packets from the tunnel that answer no flow this machine opened",
			"dropped_total", total, "example", describe(example))
	}
}

// describe says what a packet is, for a log line.
func describe(b []byte) string {
	if len(b) == 0 {
		return "empty packet"
	}
	var p packet
	parse(b, &p)
	addr := func(a [16]byte, port uint16, ports bool) string {
		ip := netip.AddrFrom16(a)
		if !p.key.v6 {
			ip = netip.AddrFrom4([4]byte(a[:4]))
		}
		if !ports {
			return ip.String()
		}
		return netip.AddrPortFrom(ip, port).String()
	}
	k := p.key
	switch p.kind {
	case kindFlow:
		proto := "udp"
		if k.proto == protoTCP {
			proto = "tcp"
		}
		return fmt.Sprintf("%s %s -> %s", proto, addr(k.src, k.sport, true), addr(k.dst, k.dport, true))
	case kindEchoRequest, kindEchoReply:
		what := "echo request"
		if p.kind == kindEchoReply {
			what = "echo reply"
		}
		return fmt.Sprintf("icmp %s %s -> %s id %d", what, addr(k.src, 0, false), addr(k.dst, 0, false), k.sport)
	case kindICMPError:
		return fmt.Sprintf("icmp error about a packet %s -> %s (proto %d)", addr(k.src, k.sport, true), addr(k.dst, k.dport, true), k.proto)
	case kindFragment:
		return "a fragment of a datagram whose first fragment did not pass"
	}
	return fmt.Sprintf("a packet of %d bytes, protocol not tracked or malformed", len(b))
}
