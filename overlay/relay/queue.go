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
//
// A queue holds a few tens of milliseconds of one fast flow: enough to
// ride out the moments the write loop waits for a CPU, which on a busy
// machine are milliseconds, while a TCP sender's burst arrives in one
// read. Too small a queue turns those moments into loss and
// retransmissions (the bench measured 7 % at 256 datagrams).
const (
	queueLen   = 2048    // datagrams queued per source node
	queueBytes = 2 << 20 // bytes queued per source node
	ctlLen     = 1024    // HELLO-ACKs and refusals queued, all nodes together
	writeBatch = 64      // sends (datagrams or runs) per sendmmsg
	ringStart  = 64      // a queue's first ring; it doubles up to queueLen
)

// outPkt is one send for the write loop: a datagram, or a run of DATA
// frames laid end to end for one UDP_SEGMENT send.
type outPkt struct {
	buf  []byte
	addr *net.UDPAddr
	data bool // forwarded DATA frames, not an ACK or refusal
	// seg is the size of each frame of a run (the last may be shorter);
	// zero for a single datagram. n is how many frames buf holds; zero
	// counts as one.
	seg, n int
}

// datagrams is how many datagrams p sends.
func (p outPkt) datagrams() int { return max(p.n, 1) }

// queue is one source's datagrams. Its fields are guarded by the sched's
// mutex.
type queue struct {
	ring   []outPkt // allocated at the first push
	head   int
	n      int // sends in ring
	dgrams int // datagrams in those sends
	bytes  int
	active bool // in sched.active
}

// grow doubles q's ring, keeping its order.
func (q *queue) grow() {
	ring := make([]outPkt, max(ringStart, 2*len(q.ring)))
	for i := range q.n {
		ring[i] = q.ring[(q.head+i)%len(q.ring)]
	}
	q.ring, q.head = ring, 0
}

func (q *queue) pop() outPkt {
	p := q.ring[q.head]
	q.ring[q.head] = outPkt{}
	q.head = (q.head + 1) % len(q.ring)
	q.n--
	q.dgrams -= p.datagrams()
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

	sending bool // a sender holds the claim (see claim)

	wake    chan struct{} // capacity 1: something was queued
	drained chan struct{} // capacity 1: take took something
}

func newSched() *sched {
	return &sched{wake: make(chan struct{}, 1), drained: make(chan struct{}, 1)}
}

// backlogged reports whether some queue is more than half full.
func (s *sched) backlogged() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, q := range s.active {
		if 2*q.dgrams > queueLen || 2*q.bytes > queueBytes {
			return true
		}
	}
	return false
}

// push queues data on q. It reports false, queueing nothing, if q would
// hold more than queueLen datagrams or queueBytes bytes.
func (s *sched) push(q *queue, p outPkt) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if q.dgrams+p.datagrams() > queueLen || q.bytes+len(p.buf) > queueBytes {
		return false
	}
	if q.n == len(q.ring) {
		q.grow()
	}
	q.ring[(q.head+q.n)%len(q.ring)] = p
	q.n++
	q.dgrams += p.datagrams()
	q.bytes += len(p.buf)
	if !q.active {
		q.active = true
		s.active = append(s.active, q)
	}
	return true
}

// pushCtl queues a control frame. It reports false if the control queue
// holds limit frames or more (at most ctlLen): refusals, which anyone
// can provoke, are queued only while it is less than half full, so they
// never crowd out the HELLO-ACKs that keep registered nodes registered.
func (s *sched) pushCtl(p outPkt, limit int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ctl) >= min(limit, ctlLen) {
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
	return s.takeLocked(out)
}

// claim is take for a sender: unless another sender holds the claim, it
// takes what take would and, if that is anything, holds the claim until
// release. At most one goroutine sends at a time, so datagrams leave in
// the order they were taken.
func (s *sched) claim(out []outPkt) []outPkt {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sending {
		return out
	}
	out = s.takeLocked(out)
	s.sending = len(out) > 0
	return out
}

// release gives up the claim, waking the write loop if anything is left
// to send.
func (s *sched) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sending = false
	if len(s.active) > 0 || len(s.ctl) > 0 {
		s.signal()
	}
}

func (s *sched) takeLocked(out []outPkt) []outPkt {
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
	if len(out) > 0 {
		select {
		case s.drained <- struct{}{}:
		default:
		}
	}
	return out
}

// Buffers for queued datagrams and runs, from two pools: one datagram
// fits a small buffer, a run of them a large one.
const (
	smallBufLen = 2048
	largeBufLen = 1 << 16
)

var (
	smallBufs = sync.Pool{New: func() any { return new([smallBufLen]byte) }}
	largeBufs = sync.Pool{New: func() any { return new([largeBufLen]byte) }}
)

// getBuf returns a buffer of length n, pooled if n fits one.
func getBuf(n int) []byte {
	switch {
	case n <= smallBufLen:
		return smallBufs.Get().(*[smallBufLen]byte)[:n]
	case n <= largeBufLen:
		return largeBufs.Get().(*[largeBufLen]byte)[:n]
	}
	return make([]byte, n)
}

// putBuf returns a buffer getBuf made to its pool.
func putBuf(b []byte) {
	switch cap(b) {
	case smallBufLen:
		smallBufs.Put((*[smallBufLen]byte)(b[:smallBufLen]))
	case largeBufLen:
		largeBufs.Put((*[largeBufLen]byte)(b[:largeBufLen]))
	}
}
