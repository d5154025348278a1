package netstack

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// The copy buffers. A direction that is moving bulk data reads into a
// large one, which takes a whole gVisor receive burst or a TSO-sized
// socket read in one call. A direction whose last read brought a small
// message (or nothing yet) waits for the next with a small one: most of a
// connector's flows sit idle (an ssh session, a database pool), and a
// 64 KiB buffer held by each of their blocked reads made 10,000 idle
// flows 1.3 GB of heap to the collector, which then ran without pause
// against the connector's soft memory limit.
const (
	proxyBufSize      = 64 << 10
	proxySmallBufSize = 2 << 10
)

var (
	proxyBufs      = sync.Pool{New: func() any { b := make([]byte, proxyBufSize); return &b }}
	proxySmallBufs = sync.Pool{New: func() any { b := make([]byte, proxySmallBufSize); return &b }}
)

// Counts are the bytes Proxy moved in each direction.
type Counts struct {
	AToB, BToA int64
}

// Meter counts the bytes a ProxyMeter run has moved so far, in each
// direction: a flow's counters while it lives. It may be read at any time
// from any goroutine; only ProxyMeter adds to it.
type Meter struct {
	AToB, BToA atomic.Int64
}

// Counts returns what m has counted so far.
func (m *Meter) Counts() Counts {
	return Counts{AToB: m.AToB.Load(), BToA: m.BToA.Load()}
}

// Proxy copies a to b and b to a until both directions are done, then
// closes both and returns. It is ProxyCount without the counts.
func Proxy(ctx context.Context, a, b net.Conn) error {
	_, err := ProxyCount(ctx, a, b)
	return err
}

// ProxyCount copies a to b and b to a until both directions are done,
// closes both conns and returns the bytes copied each way.
//
// Half-close: when one side's reads end (EOF), the other side's writing
// half is closed with CloseWrite (gVisor's gonet.TCPConn and *net.TCPConn
// have it) and the opposite direction keeps flowing until it ends too. A
// conn without CloseWrite is closed whole instead, which ends both
// directions.
//
// Any other error, or ctx ending, resets both conns at once and ends both
// directions: a TCP conn is closed with a RST rather than a FIN (see
// reset), so that neither end takes a flow cut short for one that ended,
// as a client would a truncated download. A LAN host's reset thus reaches
// the client as a reset, and the client's reaches the LAN host. The error
// returned is the first failure (ctx.Err() if ctx ended it); errors
// caused by that abort are not reported, and two clean EOFs return nil.
func ProxyCount(ctx context.Context, a, b net.Conn) (Counts, error) {
	var m Meter
	err := ProxyMeter(ctx, a, b, &m)
	return m.Counts(), err
}

// ProxyMeter is ProxyCount counting into m as the bytes move, so that
// m shows the flow's progress while it runs. m must not be shared with
// another run.
func ProxyMeter(ctx context.Context, a, b net.Conn, m *Meter) error {
	p := &proxyRun{a: a, b: b}
	stop := context.AfterFunc(ctx, func() { p.abort(ctx.Err()) })
	defer stop()

	// One direction in the caller's goroutine. The other in a goroutine
	// of its own, or, out of a flow of this Stack, in one that runs only
	// while there is something to copy (drain.go): an idle connector flow
	// costs the collector one goroutine stack, not two or three.
	done := make(chan struct{})
	switch {
	case isFlow(a):
		p.startDrain(b, a.(*tcpConn), &m.AToB, done)
		p.pipe(a, b, &m.BToA)
	case isFlow(b):
		p.startDrain(a, b.(*tcpConn), &m.BToA, done)
		p.pipe(b, a, &m.AToB)
	default:
		go func() {
			defer close(done)
			p.pipe(b, a, &m.AToB)
		}()
		p.pipe(a, b, &m.BToA)
	}
	<-done
	stop()
	p.abort(nil) // close both; keeps the error recorded first, if any
	return p.err
}

// proxyRun is the shared state of one ProxyCount.
type proxyRun struct {
	a, b net.Conn

	mu      sync.Mutex // guards aborted and err
	aborted bool
	err     error // the failure that aborted the run, if any
}

// abort ends both conns, with a reset if err is not nil; the first
// caller's err is the run's error.
func (p *proxyRun) abort(err error) {
	p.mu.Lock()
	first := !p.aborted
	if first {
		p.aborted, p.err = true, err
	}
	p.mu.Unlock()
	switch {
	case !first:
	case err != nil:
		reset(p.a)
		reset(p.b)
	default:
		p.a.Close()
		p.b.Close()
	}
}

// reset closes c with a TCP reset where c can send one: the tunnel side
// of a flow aborts its gVisor endpoint, and a kernel socket is closed
// with SO_LINGER 0. Any other conn is just closed. What c had not sent
// yet is dropped, as a kernel drops its send queue on a reset.
func reset(c net.Conn) {
	switch c := c.(type) {
	case interface{ Abort() }:
		c.Abort()
	case interface{ SetLinger(sec int) error }:
		c.SetLinger(0)
	}
	c.Close()
}

// pipe copies src to dst until src ends and half-closes dst, adding the
// bytes written to n as it goes.
func (p *proxyRun) pipe(dst, src net.Conn, n *atomic.Int64) {
	if p.pipeDirect(dst, src, n) {
		return
	}
	bulk := false // the last read brought more than a small message
	for {
		pool := &proxySmallBufs
		if bulk {
			pool = &proxyBufs
		}
		bp := pool.Get().(*[]byte)
		buf := *bp
		nr, rerr := src.Read(buf)
		bulk = nr > proxySmallBufSize/2
		if nr > 0 {
			nw, werr := dst.Write(buf[:nr])
			n.Add(int64(nw))
			if werr != nil {
				pool.Put(bp)
				p.abort(werr)
				return
			}
		}
		pool.Put(bp)
		switch {
		case rerr == nil:
			continue
		case errors.Is(rerr, io.EOF):
			p.closeWrite(dst)
		default:
			p.abort(rerr)
		}
		return
	}
}

// closeWrite passes the end of a direction's stream on: dst's writing
// half is closed, or, if dst cannot half-close, the whole run ends.
func (p *proxyRun) closeWrite(dst net.Conn) {
	cw, ok := dst.(interface{ CloseWrite() error })
	if !ok {
		p.abort(nil)
		return
	}
	if err := cw.CloseWrite(); err != nil {
		p.abort(err)
	}
}

// isFlow reports whether c is a TCP flow of a Stack, whose received data
// drain can copy.
func isFlow(c net.Conn) bool {
	_, ok := c.(*tcpConn)
	return ok
}
