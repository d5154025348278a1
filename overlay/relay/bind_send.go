package relay

import (
	"fmt"
	"net"

	"golang.org/x/net/ipv4"
	"golang.zx2c4.com/wireguard/conn"

	"github.com/warrennet/warren/overlay/wire"
)

// Send implements conn.Bind: it sends each datagram in bufs to ep's peer
// through the relay, in one batch where the platform allows.
func (b *Bind) Send(bufs [][]byte, ep conn.Endpoint) error {
	e, ok := ep.(*Endpoint)
	if !ok {
		return conn.ErrWrongEndpointType
	}
	s := b.live.Load()
	if s == nil {
		return net.ErrClosed
	}
	if s.disco != nil {
		now := s.disco.noteSend(e)
		if path := e.direct.Load(); path != nil && path.s == s {
			s.disco.checkSilent(e, path, now)
			err := b.sendTo(s, bufs, path.udp, nil)
			switch {
			case s.closed.Load():
				return err
			case err != nil:
				s.disco.drop(e, "sending failed: "+err.Error())
			case path.trusted(now):
				return nil
			}
			// Not answered lately: the relay carries a copy until
			// the path answers again or is dropped.
			if path.probing.Load() != 0 && !path.reregistered.Swap(true) {
				// A path that stopped answering its probe may have
				// died because this node's NAT moved it to a new
				// public address, where the relay would not know
				// it either: register again first.
				b.reregister(s, "a direct path stopped answering")
			}
		}
	}
	t := b.target.Load()
	if !t.usable() {
		return ErrNoRelay
	}
	if b.hold(s, t, e.key, bufs) {
		return nil
	}
	if err := b.sendTo(s, bufs, t.udp, &e.key); err != nil {
		return fmt.Errorf("relay bind: sending to relay %v: %w", t.relay, err)
	}
	return nil
}

// sendTo sends bufs to one address: as DATA frames for key (through the
// relay), or as they are if key is nil (a direct path). It sends runs
// where the socket can, and returns the first error, or net.ErrClosed if
// the Bind closed meanwhile.
func (b *Bind) sendTo(s *socket, bufs [][]byte, to *net.UDPAddr, key *wire.Key) error {
	sb := b.sendPool.Get().(*sendBatch)
	defer b.sendPool.Put(sb)
	hdr := sb.hdr[:0]
	if key != nil {
		hdr = sb.hdr[:]
		putDataHeader(hdr, key)
	}
	var first error
	fail := func(err error) {
		if first == nil {
			first = err
		}
	}
	if len(bufs) > 1 && s.gso.Load() {
		bufs = b.sendRuns(s, sb, bufs, to, hdr, fail)
	}
	b.sendEach(s, sb, bufs, to, hdr, fail)
	switch {
	case first == nil:
		return nil
	case s.closed.Load():
		return net.ErrClosed
	}
	return first
}

// sendEach sends each of bufs as its own datagram, behind hdr if it is
// not empty (gathered from two buffers), in batches.
func (b *Bind) sendEach(s *socket, sb *sendBatch, bufs [][]byte, to *net.UDPAddr, hdr []byte, fail func(error)) {
	for len(bufs) > 0 {
		ms := sb.ms[:min(len(bufs), len(sb.ms))]
		for i := range ms {
			if len(hdr) > 0 {
				ms[i].Buffers = append(ms[i].Buffers[:0], hdr, bufs[i])
			} else {
				ms[i].Buffers = append(ms[i].Buffers[:0], bufs[i])
			}
			ms[i].Addr = to
		}
		writeAll(s.bc, ms, func(_ int, err error) { fail(err) })
		for i := range ms {
			clear(ms[i].Buffers)
			ms[i].Addr = nil
		}
		bufs = bufs[len(ms):]
	}
}

// sendRuns sends bufs as GSO runs, each datagram behind hdr if it is not
// empty. If the kernel refuses
// runs on this socket, it turns them off for good and returns the bufs
// it did not send, for sendEach; otherwise it returns none.
func (b *Bind) sendRuns(s *socket, sb *sendBatch, bufs [][]byte, to *net.UDPAddr, hdr []byte, fail func(error)) [][]byte {
	for len(bufs) > 0 {
		chunk := bufs[:min(len(bufs), len(sb.runs))]
		ms := sb.coalesce(chunk, to, hdr)
		refused := -1 // the first run the kernel refused
		writeAll(s.bc, ms, func(i int, err error) {
			switch {
			case refused >= 0:
			case sb.perRun[i] > 1 && offloadRefused(err):
				refused = i
			default:
				fail(err)
			}
		})
		clear(sb.iovs)
		for i := range ms {
			ms[i].Buffers, ms[i].Addr = nil, nil
		}
		if refused >= 0 {
			s.gso.Store(false)
			b.log.Warn("relay bind: the kernel refused a UDP segmentation offload send; sending datagrams one by one", "relay", to.String())
			sent := 0
			for _, n := range sb.perRun[:refused] {
				sent += n
			}
			return bufs[sent:]
		}
		bufs = bufs[len(chunk):]
	}
	return nil
}

// coalesce groups bufs, each behind hdr (which may be empty), into runs
// for UDP_SEGMENT: consecutive datagrams of one size, up to maxSegments
// of them and maxRunLen bytes, where the last of a run may be shorter. It
// returns one message per run, addressed to to, gathering each datagram
// from the header and the buffer; sb.perRun says how many datagrams each
// holds. bufs must not outnumber sb.runs.
func (sb *sendBatch) coalesce(bufs [][]byte, to *net.UDPAddr, hdr []byte) []ipv4.Message {
	n := -1 // the run being filled
	var seg, runLen, start int
	iovs := sb.iovs[:0]
	ended := false // the run's last datagram was short: it takes no more
	for _, p := range bufs {
		size := len(hdr) + len(p)
		if n < 0 || ended || sb.perRun[n] == maxSegments || size > seg || runLen+size > maxRunLen {
			n++
			seg, runLen, start, ended = size, 0, len(iovs), false
			sb.perRun[n] = 0
		}
		if len(hdr) > 0 {
			iovs = append(iovs, hdr)
		}
		iovs = append(iovs, p)
		runLen += size
		sb.perRun[n]++
		ended = size < seg
		m := &sb.runs[n]
		m.Buffers, m.Addr = iovs[start:len(iovs):len(iovs)], to
		m.OOB = m.OOB[:0]
		if sb.perRun[n] > 1 {
			m.OOB = appendSegmentSize(m.OOB, seg)
		}
	}
	return sb.runs[:n+1]
}
