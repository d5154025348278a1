package wgdev

import (
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/tun"
)

// Receive back-pressure. wireguard-go reads its socket as fast as it can
// and queues what it read for decryption and for the TUN, each datagram
// in a 64 KiB buffer, with no bound but its queues' (a thousand batches).
// When the TUN side is the slower (the laptop's kernel, or the
// connector's gVisor, busy), a TCP flow's whole window ends up in those
// queues: megabytes of data held in hundreds of megabytes of buffers, and
// the flow's window only grows, since nothing is ever lost
// (bufferbloat). So the device counts the data datagrams it has received
// but not yet written to the TUN, and stops reading its socket while
// maxInflight are waiting: the kernel's socket buffer, which holds a
// datagram in about its own size, queues the rest, and drops what
// overflows it as any router queue would.
const (
	maxInflight = 1024
	// stallAfter: a wait that sees no datagram written for this long
	// stops waiting and forgets the count. Datagrams wireguard-go drops
	// after decryption (replays, a wrong source) are counted but never
	// written; this keeps them from wedging the reader.
	stallAfter = 20 * time.Millisecond
	// wgTransportType is the first byte of a WireGuard transport data
	// message; keepaliveLen is the length of one that carries nothing.
	wgTransportType = 4
	keepaliveLen    = 32
)

// inflight counts data datagrams between a device's socket and its TUN.
type inflight struct {
	n        atomic.Int64
	progress chan struct{} // capacity 1: a datagram was written
}

func newInflight() *inflight { return &inflight{progress: make(chan struct{}, 1)} }

// wait returns once fewer than maxInflight datagrams are waiting, or once
// none has been written for stallAfter (then the count starts again).
func (l *inflight) wait() {
	if l.n.Load() < maxInflight {
		return
	}
	t := time.NewTimer(stallAfter)
	defer t.Stop()
	for l.n.Load() >= maxInflight {
		select {
		case <-l.progress:
			t.Reset(stallAfter)
		case <-t.C:
			l.n.Store(0)
			return
		}
	}
}

// received counts the data datagrams among what a receive returned.
func (l *inflight) received(packets [][]byte, sizes []int, n int) {
	k := 0
	for i := range n {
		if sizes[i] > keepaliveLen && packets[i][0] == wgTransportType {
			k++
		}
	}
	if k > 0 {
		l.n.Add(int64(k))
	}
}

// written counts k datagrams written to the TUN.
func (l *inflight) written(k int) {
	if l.n.Add(-int64(k)) < 0 {
		l.n.Store(0) // after a reset: never below zero
	}
	select {
	case l.progress <- struct{}{}:
	default:
	}
}

// inflightBind is a conn.Bind whose receive functions wait while too
// many data datagrams are on their way to the TUN.
type inflightBind struct {
	conn.Bind
	l *inflight
}

func (b inflightBind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	fns, p, err := b.Bind.Open(port)
	for i, fn := range fns {
		fns[i] = func(packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
			b.l.wait()
			n, err := fn(packets, sizes, eps)
			b.l.received(packets, sizes, n)
			return n, err
		}
	}
	return fns, p, err
}

// inflightTUN is a tun.Device that counts what wireguard-go writes.
type inflightTUN struct {
	tun.Device
	l *inflight
}

func (t inflightTUN) Write(bufs [][]byte, offset int) (int, error) {
	n, err := t.Device.Write(bufs, offset)
	t.l.written(len(bufs))
	return n, err
}
