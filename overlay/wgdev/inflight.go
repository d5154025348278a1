package wgdev

import (
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/tun"
)

// Back-pressure in both directions. wireguard-go reads its socket and its
// TUN as fast as it can and queues what it read for the crypto and for the
// other side, each packet in a 64 KiB buffer, with no bound but its
// queues' (a thousand batches). When the other side is the slower (the
// laptop's kernel or the connector's gVisor for received datagrams; the
// socket, or the crypto on a busy CPU, for packets read from the TUN), a
// TCP flow's whole window ends up in those queues: megabytes of data held
// in hundreds of megabytes of buffers, and the flow's window only grows,
// since nothing is ever lost (bufferbloat), while the garbage collector
// works to keep the heap under the soft memory limit.
//
// So the device counts the data packets on their way through it in each
// direction, and stops reading a side while maxInflight are waiting. The
// kernel's socket buffer, or the TUN's queue (the connector's gVisor: its
// TCP send buffer), which hold a packet in about its own size, queue the
// rest, and drop what overflows them as any router queue would.
const (
	maxInflight = 1024
	// stallAfter: a wait that sees no packet go out for this long stops
	// waiting and forgets the count. Packets wireguard-go drops (replays,
	// a wrong source; no session with the peer) are counted but never
	// written; this keeps them from wedging the reader.
	stallAfter = 20 * time.Millisecond
	// wgTransportType is the first byte of a WireGuard transport data
	// message; keepaliveLen is the length of one that carries nothing.
	wgTransportType = 4
	keepaliveLen    = 32
)

// inflight counts data packets between one side of a device and the other.
type inflight struct {
	n        atomic.Int64
	progress chan struct{} // capacity 1: a packet was written
	stall    time.Duration // stallAfter, but for tests
}

func newInflight() *inflight {
	return &inflight{progress: make(chan struct{}, 1), stall: stallAfter}
}

// wait returns once fewer than maxInflight packets are waiting, or once
// none has been written for l.stall (then the count starts again).
func (l *inflight) wait() {
	if l.n.Load() < maxInflight {
		return
	}
	t := time.NewTimer(l.stall)
	defer t.Stop()
	for l.n.Load() >= maxInflight {
		select {
		case <-l.progress:
			t.Reset(l.stall)
		case <-t.C:
			l.n.Store(0)
			return
		}
	}
}

// dataMessages is how many of the first n datagrams are transport data
// messages that carry a packet.
func dataMessages(packets [][]byte, sizes []int, n int) int {
	k := 0
	for i := range n {
		if sizes[i] > keepaliveLen && packets[i][0] == wgTransportType {
			k++
		}
	}
	return k
}

// received counts k packets read from one side.
func (l *inflight) received(k int) {
	if k > 0 {
		l.n.Add(int64(k))
	}
}

// written counts k packets written to the other side.
func (l *inflight) written(k int) {
	if k <= 0 {
		return // no progress: a handshake or a keepalive
	}
	if l.n.Add(-int64(k)) < 0 {
		l.n.Store(0) // after a reset: never below zero
	}
	select {
	case l.progress <- struct{}{}:
	default:
	}
}

// inflightBind is a conn.Bind whose receive functions wait while too
// many data datagrams are on their way to the TUN (in), and that counts
// the data messages it sends (out).
type inflightBind struct {
	conn.Bind
	in, out *inflight
}

func (b inflightBind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	fns, p, err := b.Bind.Open(port)
	for i, fn := range fns {
		fns[i] = func(packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
			b.in.wait()
			n, err := fn(packets, sizes, eps)
			b.in.received(dataMessages(packets, sizes, n))
			return n, err
		}
	}
	return fns, p, err
}

func (b inflightBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	err := b.Bind.Send(bufs, ep)
	k := 0
	for _, buf := range bufs {
		if len(buf) > keepaliveLen && buf[0] == wgTransportType {
			k++
		}
	}
	b.out.written(k)
	return err
}

// inflightTUN is a tun.Device whose reads wait while too many packets
// are on their way to the socket (out), and that counts what wireguard-go
// writes to it (in).
type inflightTUN struct {
	tun.Device
	in, out *inflight
}

func (t inflightTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	t.out.wait()
	n, err := t.Device.Read(bufs, sizes, offset)
	t.out.received(n)
	return n, err
}

func (t inflightTUN) Write(bufs [][]byte, offset int) (int, error) {
	n, err := t.Device.Write(bufs, offset)
	t.in.written(len(bufs))
	return n, err
}
