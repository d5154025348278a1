package relay

import (
	"context"
	"log/slog"

	"golang.org/x/net/ipv4"
)

func (s *Server) writeLoop(ctx context.Context, bc batchConn) {
	w := newWriter(s, bc)
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.sched.wake:
		}
		for ctx.Err() == nil && w.sendOnce() {
		}
	}
}

// writer is one goroutine's means of sending what the queues hold: the
// write loop's, or the read loop's when it sends a small batch itself.
type writer struct {
	s      *Server
	bc     batchConn
	ms     []ipv4.Message
	out    []outPkt
	failed []bool
}

func newWriter(s *Server, bc batchConn) *writer {
	w := &writer{s: s, bc: bc, ms: make([]ipv4.Message, writeBatch), out: make([]outPkt, 0, writeBatch), failed: make([]bool, writeBatch)}
	for i := range w.ms {
		w.ms[i].Buffers = make([][]byte, 1)
		w.ms[i].OOB = make([]byte, 0, offloadSpace)
	}
	return w
}

// sendOnce claims up to writeBatch sends from the queues and sends them.
// It reports false if there was nothing to claim: the queues are empty,
// or another writer holds the claim and will send what is left.
func (w *writer) sendOnce() bool {
	s, ms, failed := w.s, w.ms, w.failed
	out := s.sched.claim(w.out[:0])
	if len(out) == 0 {
		return false
	}
	defer s.sched.release()
	for i, p := range out {
		ms[i].Buffers[0], ms[i].Addr = p.buf, p.addr
		ms[i].OOB = ms[i].OOB[:0]
		if p.seg > 0 {
			ms[i].OOB = appendSegmentSize(ms[i].OOB, p.seg)
		}
		failed[i] = false
	}
	writeAll(w.bc, ms[:len(out)], func(i int, err error) {
		if out[i].seg > 0 && offloadRefused(err) {
			err = s.sendApart(w.bc, out[i])
			out[i].seg = 0 // sent apart: not a run
		}
		if err != nil {
			failed[i] = true
			s.stats.writeError.Add(uint64(out[i].datagrams()))
			s.logs.logf(slog.LevelWarn, "relay write failed", "to", out[i].addr.String(), "err", err)
		}
	})
	for i, p := range out {
		switch {
		case failed[i]:
		case p.data:
			s.stats.forwarded.Add(uint64(p.datagrams()))
			s.stats.forwardedBytes.Add(uint64(len(p.buf) - p.datagrams()*DataHeaderLen))
			if p.seg > 0 {
				s.stats.runs.Add(1)
				s.stats.runFrames.Add(uint64(p.n))
			}
		default:
			s.stats.replies.Add(1)
		}
		if p.data {
			putBuf(p.buf)
		}
		ms[i].Buffers[0], ms[i].Addr = nil, nil
		out[i] = outPkt{}
	}
	return true
}

// sendApart sends a run the kernel refused to segment as separate
// datagrams, and turns runs off for good: the socket's device cannot
// checksum them.
func (s *Server) sendApart(bc batchConn, p outPkt) error {
	if s.gso.Swap(false) {
		s.log.Warn("relay: the kernel refused a UDP segmentation offload send; sending datagrams one by one")
	}
	var ms []ipv4.Message
	for b := range segments(p.buf, p.seg) {
		ms = append(ms, ipv4.Message{Buffers: [][]byte{b}, Addr: p.addr})
	}
	var first error
	writeAll(bc, ms, func(_ int, err error) {
		if first == nil {
			first = err
		}
	})
	return first
}
