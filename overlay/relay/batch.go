package relay

import (
	"errors"
	"iter"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/ipv4"
)

// batchConn reads and writes several datagrams per call where the
// platform can (recvmmsg and sendmmsg on Linux) and one at a time where it
// cannot. Messages carry scatter-gather buffers; Addr is a *net.UDPAddr.
//
// ReadBatch fills ms[i].Buffers[0] (one buffer per message), N and Addr,
// and returns how many messages it filled. WriteBatch sends each message
// to its Addr and returns how many it sent before an error.
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
	SetReadDeadline(t time.Time) error
}

// newBatchConn wraps pc. A *net.UDPConn gets x/net's batching, which
// works on a socket of either family (the kernel takes IPv4 destinations
// on a dual-stack socket); any other PacketConn is used one datagram at a
// time.
func newBatchConn(pc net.PacketConn) batchConn {
	if c, ok := pc.(*net.UDPConn); ok {
		return ipv4.NewPacketConn(c)
	}
	return singleConn{pc}
}

// singleConn adapts a net.PacketConn to batchConn, one datagram per call.
type singleConn struct{ net.PacketConn }

func (c singleConn) ReadBatch(ms []ipv4.Message, _ int) (int, error) {
	if len(ms) == 0 {
		return 0, nil
	}
	n, addr, err := c.ReadFrom(ms[0].Buffers[0])
	if err != nil {
		return 0, err
	}
	ms[0].N, ms[0].Addr = n, addr
	return 1, nil
}

func (c singleConn) WriteBatch(ms []ipv4.Message, _ int) (int, error) {
	for i, m := range ms {
		b := m.Buffers[0]
		if len(m.Buffers) > 1 {
			b = nil
			for _, p := range m.Buffers {
				b = append(b, p...)
			}
		}
		if _, err := c.WriteTo(b, m.Addr); err != nil {
			return i, err
		}
	}
	return len(ms), nil
}

// writeAll sends every message in ms, skipping any the socket refuses:
// for each it calls fail with the message's index in ms and the error.
func writeAll(bc batchConn, ms []ipv4.Message, fail func(i int, err error)) {
	for done := 0; done < len(ms); {
		n, err := bc.WriteBatch(ms[done:], 0)
		n = max(n, 0) // x/net reports -1 with some errors
		if err == nil && n == 0 {
			err = errNoProgress
		}
		done += n
		if err != nil && done < len(ms) {
			fail(done, err)
			done++ // skip the message that failed
		}
	}
}

var errNoProgress = errors.New("batch write made no progress")

// addrPortOf converts a socket address to an unmapped AddrPort; the zero
// AddrPort if it is not a UDP address.
func addrPortOf(a net.Addr) netip.AddrPort {
	ua, ok := a.(*net.UDPAddr)
	if !ok {
		return netip.AddrPort{}
	}
	ap := ua.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// segments yields the datagrams of a run read with UDP_GRO: seg bytes
// each, the last possibly shorter. A seg of zero, or one not smaller than
// b, yields b whole.
func segments(b []byte, seg int) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		if seg <= 0 || seg >= len(b) {
			yield(b)
			return
		}
		for len(b) > 0 {
			n := min(seg, len(b))
			if !yield(b[:n:n]) {
				return
			}
			b = b[n:]
		}
	}
}
