package connector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/warrennet/warren/netstack"
)

// admit reports why a flow may not be served, or nil.
func (c *Connector) admit(f netstack.Flow) error {
	p := c.policy.Load()
	if _, ok := p.clients[f.Src.Addr()]; !ok {
		return fmt.Errorf("source %s is not an enrolled client", f.Src.Addr())
	}
	dst := f.Dst.Addr()
	if dst.IsLoopback() || dst.IsLinkLocalUnicast() || dst.IsLinkLocalMulticast() || dst.IsMulticast() || dst.IsUnspecified() {
		return fmt.Errorf("destination %s is never served", dst)
	}
	if _, ok := p.served.Lookup(dst); !ok {
		return fmt.Errorf("destination %s is outside the prefixes this connector serves", dst)
	}
	return nil
}

// HandleTCP implements netstack.FlowHandler: dial the LAN host first,
// then complete the client's handshake, then copy both ways.
func (c *Connector) HandleTCP(ctx context.Context, f netstack.Flow, accept func() (net.Conn, error)) {
	if err := c.admit(f); err != nil {
		c.log.Debug("refusing flow", "flow", f, "err", err)
		return // RST
	}
	dctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	lan, err := c.cfg.Dial(dctx, "tcp", f.Dst.String())
	cancel()
	if err != nil {
		c.log.Debug("dialing LAN host", "dst", f.Dst, "err", err)
		return // RST
	}
	tunnel, err := accept()
	if err != nil {
		lan.Close()
		return
	}
	if err := netstack.Proxy(ctx, tunnel, lan); err != nil && !errors.Is(err, context.Canceled) {
		c.log.Debug("flow ended", "flow", f, "err", err)
	}
}

// HandleUDP implements netstack.FlowHandler: one connected UDP socket per
// flow, copying datagrams both ways until either side ends. The stack
// closes tunnel once the flow has been idle both ways for its idle timeout,
// which ends both directions; neither direction has a timeout of its own,
// so a flow that only ever goes one way (syslog, a metrics feed) keeps its
// LAN socket, and its source port, for as long as it flows.
func (c *Connector) HandleUDP(ctx context.Context, f netstack.Flow, tunnel net.Conn) {
	defer tunnel.Close()
	if err := c.admit(f); err != nil {
		c.log.Debug("refusing flow", "flow", f, "err", err)
		return
	}
	lan, err := c.cfg.Dial(ctx, "udp", f.Dst.String())
	if err != nil {
		c.log.Debug("dialing LAN host", "dst", f.Dst, "err", err)
		return
	}
	defer lan.Close()
	// pump copies one datagram per Read and Write.
	pump := func(dst, src net.Conn) {
		buf := make([]byte, 64<<10)
		for {
			n, err := src.Read(buf)
			if errors.Is(err, syscall.ECONNREFUSED) {
				continue // the LAN host's ICMP port unreachable, reported on the socket
			}
			if err != nil {
				return
			}
			if _, err := dst.Write(buf[:n]); err != nil && !isTransient(err) {
				return
			}
		}
	}
	toLAN := func() { pump(lan, tunnel) }
	if br, ok := tunnel.(netstack.BatchReader); ok {
		if uc, ok := lan.(*net.UDPConn); ok {
			toLAN = func() { pumpToLAN(uc, br, f.Dst.Addr().Is4()) }
		}
	}
	done := make(chan struct{}, 2)
	go func() { toLAN(); done <- struct{}{} }()
	go func() { pump(tunnel, lan); done <- struct{}{} }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	tunnel.Close()
	lan.Close()
	<-done
	<-done
}

// udpBatch is the most datagrams pumpToLAN reads and sends at once, and
// udpBufSize the size of each of its buffers: a datagram can be as large
// as an IP packet once gVisor has reassembled it.
const (
	udpBatch   = 64
	udpBufSize = 64 << 10
)

// pumpToLAN forwards the client's datagrams, read as batches through br,
// to the LAN socket lan: every datagram already queued goes out
// in one sendmmsg, instead of a write each, which on a fast flow cost the
// connector most of its time and the flow a third of its datagrams.
//
// It starts with one buffer and doubles them, up to udpBatch, each time a
// batch fills them all: a DNS lookup's flow keeps 64 KiB, as a single
// read would, and only a fast flow holds the 4 MiB of a full batch.
func pumpToLAN(lan *net.UDPConn, br netstack.BatchReader, ip4 bool) {
	bufs := [][]byte{make([]byte, udpBufSize)}
	sizes := make([]int, udpBatch)
	msgs := make([]ipv4.Message, udpBatch) // ipv6.Message is the same type
	for i := range msgs {
		msgs[i].Buffers = [][]byte{nil}
	}
	var send func([]ipv4.Message, int) (int, error)
	if ip4 {
		send = ipv4.NewPacketConn(lan).WriteBatch
	} else {
		send = ipv6.NewPacketConn(lan).WriteBatch
	}
	for {
		n, err := br.ReadBatch(bufs, sizes)
		if err != nil {
			return
		}
		for i := range n {
			msgs[i].Buffers[0] = bufs[i][:sizes[i]]
		}
		if n == len(bufs) && n < udpBatch {
			for range min(n, udpBatch-n) {
				bufs = append(bufs, make([]byte, udpBufSize))
			}
		}
		for out := msgs[:n]; len(out) > 0; {
			sent, err := send(out, 0)
			switch {
			case err == nil:
				out = out[sent:]
			case isTransient(err):
				out = out[1:] // this one is lost, as a write's would be
			default:
				return
			}
		}
	}
}

// isTransient reports errors a UDP flow survives, such as an ICMP port
// unreachable reported on a connected socket.
func isTransient(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF)
}

// HandlePing implements netstack.FlowHandler: ping the real host and let
// the stack answer the client only if it answered.
func (c *Connector) HandlePing(ctx context.Context, f netstack.Flow, payload []byte) netstack.PingVerdict {
	if err := c.admit(f); err != nil {
		return netstack.PingProhibited
	}
	if c.pinger.ping(ctx, f.Dst.Addr(), payload) {
		return netstack.PingReply
	}
	return netstack.PingDrop
}
