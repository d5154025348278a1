package netstack

import (
	"net"
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/waiter"
)

// From a flow of this Stack to a conn, with no goroutine while idle.
//
// Most of a connector's flows sit idle (an ssh session, a database pool),
// and a goroutine blocked in each direction of each of them made 10,000
// idle flows 20,000 stacks for the collector to scan: about 60 % of the
// connector's CPU went to garbage collection when they all closed at once
// (docs/PERFORMANCE.md). The direction out of gVisor needs no goroutine to
// wait: the flow's wait queue calls drain.notify when data (or the end of
// the stream) arrives, and only then does a goroutine run, copying until
// gVisor has nothing more and then exiting. The other direction still
// waits in a goroutine, on the kernel socket, where Go's poller wants it.

// drain copies what a flow receives to dst, from a goroutine that runs only
// while there is something to copy.
type drain struct {
	p     *proxyRun
	src   *tcpConn
	dst   net.Conn
	n     *atomic.Int64 // bytes written to dst
	done  chan struct{} // closed when the direction has ended
	entry waiter.Entry

	mu      sync.Mutex
	running bool // a goroutine is copying
	again   bool // an event came while it was
	ended   bool
}

// startDrain starts copying src to dst, adding the bytes written to n;
// done is closed when the direction ends, as pipe's goroutine would.
func (p *proxyRun) startDrain(dst net.Conn, src *tcpConn, n *atomic.Int64, done chan struct{}) {
	d := &drain{p: p, src: src, dst: dst, n: n, done: done}
	d.entry = waiter.NewFunctionEntry(waiter.ReadableEvents|waiter.EventHUp|waiter.EventErr, d.notify)
	src.wq.EventRegister(&d.entry)
	d.notify(waiter.ReadableEvents) // for what arrived before the registration
}

// notify is the wait queue's callback. gVisor calls it with its own locks
// held, so it only starts the copying goroutine, or tells the running one
// to look again before it exits.
func (d *drain) notify(waiter.EventMask) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.ended:
	case d.running:
		d.again = true
	default:
		d.running = true
		go d.run()
	}
}

// run copies until gVisor has nothing more to read, or the direction ends.
func (d *drain) run() {
	bp := proxyBufs.Get().(*[]byte)
	defer proxyBufs.Put(bp)
	for {
		w := tcpip.SliceWriter(*bp)
		res, err := d.src.ep.Read(&w, tcpip.ReadOptions{})
		switch err.(type) {
		case nil:
			d.src.ep.ModerateRecvBuf(res.Count) // receive-buffer autotuning, as gonet's Read does
			nw, werr := d.dst.Write((*bp)[:res.Count])
			d.n.Add(int64(nw))
			if werr != nil {
				d.p.abort(werr)
				d.end()
				return
			}
		case *tcpip.ErrWouldBlock:
			if d.idle() {
				return
			}
		case *tcpip.ErrClosedForReceive:
			d.p.closeWrite(d.dst)
			d.end()
			return
		default:
			d.p.abort(convertErr(err))
			d.end()
			return
		}
	}
}

// idle ends the goroutine's turn unless an event came since it last read.
func (d *drain) idle() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.again {
		d.again = false
		return false
	}
	d.running = false
	return true
}

// end stops the notifications and reports the direction done.
func (d *drain) end() {
	d.mu.Lock()
	d.ended = true
	d.mu.Unlock()
	d.src.wq.EventUnregister(&d.entry)
	close(d.done)
}
