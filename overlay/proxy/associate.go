package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	socks5 "github.com/things-go/go-socks5"
	"github.com/things-go/go-socks5/statute"
)

// Limits of a UDP association.
const (
	// maxDestinations is how many destinations one association has at once; a datagram to
	// another is dropped until one idles out.
	maxDestinations = 64
	// udpIdle closes a destination that saw no datagram either way for this long.
	udpIdle = 60 * time.Second
	// maxPending is how many datagrams a destination holds while it is being dialed; more are
	// dropped.
	maxPending = 16
	// redialAfter is how long a destination whose dial failed stays, dropping datagrams, before
	// the next datagram dials again: a retrying client makes one dial per redialAfter, not one per
	// datagram.
	redialAfter = 2 * time.Second
	// maxDatagram is the largest UDP datagram.
	maxDatagram = 64 << 10
)

// association is one UDP ASSOCIATE: a relay socket facing the client, and a connected UDP conn
// from the Dialer per destination. It lives until its TCP control connection ends or Run stops.
type association struct {
	r      *running
	ctx    context.Context // ends the association
	cancel context.CancelFunc
	relay  *net.UDPConn // the client's datagrams arrive here, and the answers leave from it

	// Who may use the relay: datagrams from the control connection's IP (and from the port the
	// request named, if it named one). The first accepted datagram fixes the client's address;
	// only readClient writes client, before it starts the destination goroutines that read it.
	clientIP netip.Addr
	wantPort uint16
	client   netip.AddrPort

	mu    sync.Mutex          // guards dests and each destination's conn and pending
	dests map[string]*udpDest // by the address the client sent to, "host:port"
	wg    sync.WaitGroup      // readClient and the destination goroutines
	sent  atomic.Uint64       // datagrams client → destinations
	recv  atomic.Uint64       // datagrams destinations → client
	drops atomic.Uint64       // datagrams dropped: foreign, malformed, over a limit
	errs  *limited            // the association's rate-limited errors (r.errs.udp)
	start time.Time
}

// udpDest is one destination of an association.
type udpDest struct {
	addr    string       // "host:port" as the client wrote it, what the Dialer gets
	header  []byte       // the SOCKS5 UDP header of the answers: the destination as the client named it
	conn    net.Conn     // nil while dialing; guarded by association.mu
	pending [][]byte     // datagrams waiting for the dial; guarded by association.mu
	last    atomic.Int64 // Unix ns of the last datagram either way
}

func (d *udpDest) touch() { d.last.Store(time.Now().UnixNano()) }

// socksAssociate is the UDP ASSOCIATE handler. It opens the relay socket on the address the
// client reached the proxy at, answers with it, and serves the association until the control
// connection (w) ends.
func (r *running) socksAssociate(_ context.Context, w io.Writer, req *socks5.Request) error {
	ctrl, ok := w.(net.Conn)
	if !ok {
		return fmt.Errorf("socks5 associate: the library passed a %T, not the client's conn", w)
	}
	local, remote := addrPort(ctrl.LocalAddr()), addrPort(ctrl.RemoteAddr())
	relay, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local.Addr().Unmap(), 0)))
	if err != nil {
		r.errs.udp.warn(r.log, "socks5 associate: opening the relay socket", "err", err)
		return sendReply(w, statute.RepServerFailure, nil)
	}
	ctx, cancel := context.WithCancel(r.ctx)
	a := &association{
		r: r, ctx: ctx, cancel: cancel, relay: relay,
		clientIP: remote.Addr().Unmap(), wantPort: uint16(req.DestAddr.Port),
		dests: map[string]*udpDest{}, errs: &r.errs.udp, start: time.Now(),
	}
	defer a.close()
	if err := sendReply(w, statute.RepSuccess, relay.LocalAddr()); err != nil {
		return err
	}
	ctrl.SetDeadline(time.Time{})
	r.log.Debug("socks5 udp associate", "src", ctrl.RemoteAddr(), "relay", relay.LocalAddr())

	// The association ends with its control connection (RFC 1928 §7), or when readClient fails
	// or Run stops: then ctrl is closed, which ends the read below.
	stop := context.AfterFunc(ctx, func() { ctrl.Close() })
	defer stop()
	a.wg.Go(a.readClient)
	io.Copy(io.Discard, req.Reader)
	return nil
}

// close ends the association and waits for its goroutines.
func (a *association) close() {
	a.cancel()
	a.relay.Close()
	a.wg.Wait()
	a.r.log.Debug("socks5 udp associate closed", "relay", a.relay.LocalAddr(), "sent", a.sent.Load(),
		"received", a.recv.Load(), "dropped", a.drops.Load(), "duration", time.Since(a.start).Round(time.Millisecond))
}

// readClient reads the client's datagrams and sends each on to its destination, until the relay
// socket closes.
func (a *association) readClient() {
	defer a.cancel()
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := a.relay.ReadFromUDPAddrPort(buf)
		if err != nil {
			if a.ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				a.errs.warn(a.r.log, "socks5 udp: reading the relay socket", "err", err)
			}
			return
		}
		if !a.fromClient(from) {
			a.drops.Add(1)
			continue
		}
		d, err := parseDatagram(buf[:n])
		if err != nil {
			a.drops.Add(1)
			a.errs.warn(a.r.log, "socks5 udp: datagram from the client", "src", from, "err", err)
			continue
		}
		a.send(d)
	}
}

// fromClient reports whether a datagram from src is the client's, fixing the client's address at
// the first one.
func (a *association) fromClient(src netip.AddrPort) bool {
	if a.client.IsValid() {
		return src == a.client
	}
	if src.Addr().Unmap() != a.clientIP || (a.wantPort != 0 && src.Port() != a.wantPort) {
		return false
	}
	a.client = src
	return true
}

// parseDatagram parses a datagram from the client (RFC 1928 §7) with the library's parser, and
// refuses what the relay does not serve: fragments, port 0, a domain that is not a host name.
// The datagram's Data aliases b.
func parseDatagram(b []byte) (statute.Datagram, error) {
	d, err := statute.ParseDatagram(b)
	switch {
	case err != nil:
		return d, err
	case d.Frag != 0:
		return d, fmt.Errorf("fragment %d: fragmentation is not supported", d.Frag)
	case d.DstAddr.Port == 0:
		return d, errors.New("destination port 0")
	case d.DstAddr.AddrType == statute.ATYPDomain && !validHost(d.DstAddr.FQDN):
		return d, fmt.Errorf("destination %q is not a host name", d.DstAddr.FQDN)
	}
	return d, nil
}

// send passes d's data to its destination, starting the destination if it is new.
func (a *association) send(d statute.Datagram) {
	addr := d.DstAddr.String()
	a.mu.Lock()
	dest := a.dests[addr]
	if dest == nil {
		if len(a.dests) >= a.r.lim.maxDestinations {
			a.mu.Unlock()
			a.drops.Add(1)
			a.errs.warn(a.r.log, "socks5 udp: too many destinations, datagram dropped", "relay", a.relay.LocalAddr(), "dst", addr, "max", a.r.lim.maxDestinations)
			return
		}
		// The answers carry the destination as the client named it: a name stays a name.
		dest = &udpDest{addr: addr, header: d.Header()}
		dest.touch()
		a.dests[addr] = dest
		a.wg.Go(func() { a.runDest(dest) })
	}
	conn := dest.conn
	if conn == nil {
		if len(dest.pending) < maxPending {
			dest.pending = append(dest.pending, bytes.Clone(d.Data))
		} else {
			a.drops.Add(1)
		}
		a.mu.Unlock()
		return
	}
	a.mu.Unlock()
	dest.touch()
	if _, err := conn.Write(d.Data); err != nil {
		a.drops.Add(1)
		a.errs.warn(a.r.log, "socks5 udp: sending to the destination", "dst", addr, "err", err)
		return
	}
	a.sent.Add(1)
}

// runDest dials dest, sends what waited for the dial, and passes the destination's datagrams to
// the client until the destination idles out or the association ends; then it removes dest.
func (a *association) runDest(dest *udpDest) {
	defer a.remove(dest)
	conn, err := a.r.dial(a.ctx, "udp", dest.addr)
	if err != nil {
		if a.ctx.Err() == nil {
			a.errs.warn(a.r.log, "socks5 udp: dial failed", "dst", dest.addr, "err", err)
			sleep(a.ctx, a.r.lim.redialAfter)
		}
		return
	}
	defer conn.Close()
	stop := context.AfterFunc(a.ctx, func() { conn.Close() })
	defer stop()

	a.mu.Lock()
	dest.conn = conn
	pending := dest.pending
	dest.pending = nil
	a.mu.Unlock()
	a.r.log.Debug("socks5 udp destination", "src", a.client, "dst", dest.addr)
	for _, p := range pending {
		if _, err := conn.Write(p); err != nil {
			a.drops.Add(1)
			continue
		}
		a.sent.Add(1)
	}

	// Each answer is read behind the header, and leaves in one write.
	buf := make([]byte, len(dest.header)+maxDatagram)
	hdr := copy(buf, dest.header)
	for {
		conn.SetReadDeadline(time.Unix(0, dest.last.Load()).Add(a.r.lim.udpIdle))
		n, err := conn.Read(buf[hdr:])
		switch {
		case err == nil:
		case isTimeout(err) && time.Since(time.Unix(0, dest.last.Load())) < a.r.lim.udpIdle:
			continue // the client sent meanwhile
		case errors.Is(err, syscall.ECONNREFUSED):
			continue // an ICMP port unreachable for an earlier datagram
		default:
			if a.ctx.Err() == nil && !isTimeout(err) {
				a.errs.warn(a.r.log, "socks5 udp: reading from the destination", "dst", dest.addr, "err", err)
			}
			a.r.log.Debug("socks5 udp destination closed", "src", a.client, "dst", dest.addr, "err", err)
			return
		}
		dest.touch()
		if _, err := a.relay.WriteToUDPAddrPort(buf[:hdr+n], a.client); err != nil {
			a.drops.Add(1)
			if a.ctx.Err() == nil {
				a.errs.warn(a.r.log, "socks5 udp: sending to the client", "dst", dest.addr, "err", err)
			}
			continue
		}
		a.recv.Add(1)
	}
}

// remove forgets dest, so that the next datagram to its address starts a new one.
func (a *association) remove(dest *udpDest) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.dests[dest.addr] == dest {
		delete(a.dests, dest.addr)
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
