package netstack

import (
	"errors"
	"io"
	"net"
	"sync/atomic"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/waiter"
)

// From a kernel socket into gVisor without a buffer between them.
//
// Through net.Conn, every byte a connector sends toward the tunnel is
// copied twice in user space: out of the LAN socket into a proxy buffer,
// then from that buffer into gVisor's send buffer. ProxyCount skips the
// middle when the source is a kernel TCP socket and the destination a flow
// of this Stack: gVisor's endpoint writes from a tcpip.Payloader that
// reads the socket, so the kernel copies each byte straight into gVisor's
// buffer. gVisor reads a Payloader with its locks released, and the read
// is sized by what the socket holds (SIOCINQ, up to maxSocketRead), so
// gVisor's buffer is no larger than the data.
//
// The other direction keeps the buffer. gVisor's endpoint can read into an
// io.Writer that writes to the socket, but it holds the endpoint's user
// lock meanwhile, and a write to a socket on a veth runs the far host's
// receive path in the same system call: gVisor then processed and
// acknowledged the tunnel's segments late, and uploads in the demo lab
// fell from 1.7-2.5 to 1.5-1.75 Gbit/s although the copy was gone.

// pipeDirect copies src to dst without a user-space buffer when src is a
// kernel TCP socket and dst a flow of this package, adding the bytes
// written to n; it returns false (and does nothing) otherwise.
func (p *proxyRun) pipeDirect(dst, src net.Conn, n *atomic.Int64) bool {
	if t, isFlow := dst.(*tcpConn); isFlow {
		if s, isSocket := src.(*net.TCPConn); isSocket {
			p.fromSocket(t, s, n)
			return true
		}
	}
	return false
}

// fromSocket copies the socket src to the flow dst until src ends, then
// half-closes dst; it adds the bytes written to n as it goes.
func (p *proxyRun) fromSocket(dst *tcpConn, src *net.TCPConn, n *atomic.Int64) {
	rc, err := src.SyscallConn()
	if err != nil {
		p.abort(err)
		return
	}
	entry, writable := waiter.NewChannelEntry(waiter.WritableEvents)
	dst.wq.EventRegister(&entry)
	defer dst.wq.EventUnregister(&entry)

	var (
		r    socketReader
		wn   int64
		werr tcpip.Error
	)
	for {
		wn, werr = 0, nil
		rerr := rc.Read(func(fd uintptr) bool {
			r.fd, r.err, r.eof = int(fd), nil, false
			if !r.measure() {
				return false // nothing yet: wait until the socket is readable
			}
			if r.left > 0 {
				wn, werr = dst.ep.Write(&r, tcpip.WriteOptions{})
			}
			return true
		})
		n.Add(wn)
		switch {
		case rerr != nil:
			p.abort(rerr)
			return
		case r.err != nil:
			p.abort(&net.OpError{Op: "read", Net: "tcp", Addr: src.RemoteAddr(), Err: r.err})
			return
		}
		switch werr.(type) {
		case nil:
		case *tcpip.ErrWouldBlock:
			<-writable // gVisor's send buffer is full; Close notifies too
			continue
		default:
			p.abort(convertErr(werr))
			return
		}
		if r.eof {
			if err := dst.CloseWrite(); err != nil {
				p.abort(err)
			}
			return
		}
	}
}

// maxSocketRead bounds one write into gVisor, which becomes one segment
// in its send queue. Writing all the socket held (up to megabytes) saved
// the connector about 4 % of its CPU on lossless downloads, but under 1 %
// underlay loss gVisor's recovery with such segments moved 0.31 Gbit/s
// against 0.47 with 64 KiB ones (six 8 s downloads each, demo lab).
const maxSocketRead = 64 << 10

// socketReader is a tcpip.Payloader over a non-blocking socket: Len is
// what measure found queued, and Read never fails, so gVisor keeps every
// byte it took; an error or the end of the stream is kept in err and eof.
type socketReader struct {
	fd   int
	left int // bytes queued in the socket that Read has not returned
	err  error
	eof  bool
}

// measure sets left to the bytes queued in the socket, at most
// maxSocketRead; when there are none it finds out whether the stream
// ended (eof), failed (err) or has nothing yet (false: wait for it to be
// readable).
func (r *socketReader) measure() bool {
	for {
		q, err := unix.IoctlGetInt(r.fd, unix.SIOCINQ)
		if err != nil {
			r.err = err
			return true
		}
		if q > 0 {
			r.left = min(q, maxSocketRead)
			return true
		}
		var b [1]byte
		m, _, err := unix.Recvfrom(r.fd, b[:], unix.MSG_PEEK)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return false
		case err != nil:
			r.err = err
			return true
		case m == 0:
			r.left, r.eof = 0, true
			return true
		}
		// A byte arrived since SIOCINQ: measure again.
	}
}

// Len implements tcpip.Payloader.
func (r *socketReader) Len() int { return r.left }

// Read implements io.Reader for gVisor: it reads at most left bytes and
// reports io.EOF instead of any error, so that gVisor queues what it got.
func (r *socketReader) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil // gVisor's probe for EOF; the socket is not read
	}
	if r.left == 0 || r.err != nil {
		return 0, io.EOF
	}
	b = b[:min(len(b), r.left)]
	for {
		m, err := unix.Read(r.fd, b)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			r.left = 0
			return 0, io.EOF
		case err != nil:
			r.err, r.left = err, 0
			return 0, io.EOF
		case m == 0:
			r.eof, r.left = true, 0
			return 0, io.EOF
		}
		r.left -= m
		return m, nil
	}
}
