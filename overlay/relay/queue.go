package relay

import (
	"net"
	"slices"
	"sync"
)

// Limits of the queues between the read loop and the write loop. Each
// registered node has its own queue of datagrams waiting to go out; the
// write loop takes one datagram from each non-empty queue in turn, so a
// node that sends faster than the relay can write fills only its own
// queue and loses only its own datagrams.
const (
	queueLen   = 256     // datagrams queued per source node
	queueBytes = 1 << 20 // bytes queued per source node
	ctlLen     = 1024    // HELLO-ACKs and refusals queued, all nodes together
	writeBatch = 64      // datagrams per sendmmsg
)

// outPkt is one datagram for the write loop.
type outPkt struct {
	buf  []byte
	addr *net.UDPAddr
	data bool // a forwarded DATA frame, not an ACK or refusal
}

// queue is one source's datagrams. Its fields are guarded by the sched's
// mutex.
type queue struct {
	ring   []outPkt // allocated at the first push
	head   int
	n      int
	bytes  int
	active bool // in sched.active
}

func (q *queue) pop() outPkt {
	p := q.ring[q.head]
	q.ring[q.head] = outPkt{}
	q.head = (q.head + 1) % len(q.ring)
	q.n--
	q.bytes -= len(p.buf)
	return p
}

// sched hands datagrams from the read loop to the write loop: control
// frames first, then data round-robin across sources.
type sched struct {
	mu     sync.Mutex // guards ctl, active, next and every queue's fields
	ctl    []outPkt
	active []*queue // queues holding datagrams, in round-robin order
	next   int      // index in active of the queue to take from next

	wake chan struct{} // capacity 1: something was queued
}

func newSched() *sched {
	return &sched{wake: make(chan struct{}, 1)}
}

// push queues a data datagram on q. It reports false, queueing nothing,
// if q is full.
func (s *sched) push(q *queue, p outPkt) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q.n == queueLen || q.bytes+len(p.buf) > queueBytes {
		return false
	}
	if q.ring == nil {
		q.ring = make([]outPkt, queueLen)
	}
	q.ring[(q.head+q.n)%len(q.ring)] = p
	q.n++
	q.bytes += len(p.buf)
	if !q.active {
		q.active = true
		s.active = append(s.active, q)
	}
	return true
}

// pushCtl queues a control frame. It reports false if the control queue
// is full.
func (s *sched) pushCtl(p outPkt) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ctl) == ctlLen {
		return false
	}
	s.ctl = append(s.ctl, p)
	return true
}

// signal wakes the write loop.
func (s *sched) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// take appends up to cap(out)-len(out) datagrams to out: control frames
// first, then one datagram per source in turn, resuming where the last
// call stopped.
func (s *sched) take(out []outPkt) []outPkt {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := min(len(s.ctl), cap(out)-len(out))
	out = append(out, s.ctl[:k]...)
	clear(s.ctl[:k])
	s.ctl = s.ctl[:copy(s.ctl, s.ctl[k:])]
	for len(out) < cap(out) && len(s.active) > 0 {
		if s.next >= len(s.active) {
			s.next = 0
		}
		q := s.active[s.next]
		out = append(out, q.pop())
		if q.n > 0 {
			s.next++
			continue
		}
		q.active = false
		s.active = slices.Delete(s.active, s.next, s.next+1)
	}
	return out
}

// Buffers for queued datagrams: most fit a pooled buffer; bigger ones are
// allocated to size.
const pooledBufLen = 2048

var bufPool = sync.Pool{New: func() any { return new([pooledBufLen]byte) }}

func getBuf(n int) []byte {
	if n > pooledBufLen {
		return make([]byte, n)
	}
	return bufPool.Get().(*[pooledBufLen]byte)[:n]
}

func putBuf(b []byte) {
	if cap(b) == pooledBufLen {
		bufPool.Put((*[pooledBufLen]byte)(b[:pooledBufLen]))
	}
}
