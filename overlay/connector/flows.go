package connector

import (
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/warrennet/warren/netstack"
	"github.com/warrennet/warren/overlay/wire"
)

// HandleTCP implements netstack.FlowHandler: admit the flow, dial the LAN
// host, write a PROXY v2 header if the route asks for one, then complete
// the client's handshake and copy both ways. A refused flow, or one whose
// dial fails, gets a RST: nothing reaches Dial before admit allowed it.
func (c *Connector) HandleTCP(ctx context.Context, f netstack.Flow, accept func() (net.Conn, error)) {
	lf, d := c.begin(ctx, f)
	if lf == nil {
		return // RST
	}
	dctx, cancel := context.WithTimeout(lf.ctx, c.cfg.DialTimeout)
	lan, err := c.cfg.Dial(dctx, "tcp", f.Dst.String())
	cancel()
	if err != nil {
		c.log.Debug("dialing LAN host", "dst", f.Dst, "err", err)
		c.end(lf, "dial failed: "+err.Error())
		return // RST
	}
	if d.proxy {
		if err := writeProxyHeader(lan, f.Src, f.Dst, d.client.user, d.client.name); err != nil {
			lan.Close()
			c.end(lf, err.Error())
			return
		}
	}
	tunnel, err := accept()
	if err != nil {
		lan.Close()
		c.end(lf, "the client's handshake failed")
		return
	}
	err = netstack.ProxyMeter(lf.ctx, tunnel, lan, &lf.meter)
	c.end(lf, endNote(ctx, err))
}

// endNote says how a flow that was served ended, when that is not just
// its two ends closing.
func endNote(ctx context.Context, err error) string {
	switch {
	case err == nil:
		return ""
	case ctx.Err() != nil:
		return "the connector stopped"
	case errors.Is(err, context.Canceled):
		return "" // cut: end says why
	}
	return "ended with: " + err.Error()
}

// HandleUDP implements netstack.FlowHandler: admit the flow, then open one
// connected UDP socket for it and copy datagrams both ways until either
// side ends. A refused flow gets ICMP administratively prohibited. The
// stack closes tunnel once the flow has been idle both ways for its idle
// timeout, which ends both directions; neither direction has a timeout of
// its own, so a flow that only ever goes one way (syslog, a metrics feed)
// keeps its LAN socket, and its source port, for as long as it flows.
func (c *Connector) HandleUDP(ctx context.Context, f netstack.Flow, tunnel net.Conn) {
	defer tunnel.Close()
	lf, _ := c.begin(ctx, f)
	if lf == nil {
		if p, ok := tunnel.(netstack.Prohibiter); ok {
			p.Prohibit()
		}
		return
	}
	lan, err := c.cfg.Dial(lf.ctx, "udp", f.Dst.String())
	if err != nil {
		c.log.Debug("dialing LAN host", "dst", f.Dst, "err", err)
		c.end(lf, "dial failed: "+err.Error())
		return
	}
	defer lan.Close()
	up, down := &lf.meter.AToB, &lf.meter.BToA
	toLAN := func() { pump(lan, tunnel, up) }
	if br, ok := tunnel.(netstack.BatchReader); ok {
		if uc, ok := lan.(*net.UDPConn); ok {
			toLAN = func() { pumpToLAN(uc, br, f.Dst.Addr().Is4(), up) }
		}
	}
	done := make(chan struct{}, 2)
	go func() { toLAN(); done <- struct{}{} }()
	go func() { pump(tunnel, lan, down); done <- struct{}{} }()
	ended := 0
	select {
	case <-done:
		ended++
	case <-lf.ctx.Done():
	}
	tunnel.Close()
	lan.Close()
	for ; ended < 2; ended++ {
		<-done
	}
	note := ""
	if ctx.Err() != nil {
		note = "the connector stopped"
	}
	c.end(lf, note)
}

// pump copies one datagram per Read and Write, adding the bytes written
// to n.
func pump(dst, src net.Conn, n *atomic.Int64) {
	buf := make([]byte, 64<<10)
	for {
		k, err := src.Read(buf)
		if errors.Is(err, syscall.ECONNREFUSED) {
			continue // the LAN host's ICMP port unreachable, reported on the socket
		}
		if err != nil {
			return
		}
		w, err := dst.Write(buf[:k])
		n.Add(int64(w))
		if err != nil && !isTransient(err) {
			return
		}
	}
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
// connector most of its time and the flow a third of its datagrams. The
// bytes sent are added to n.
//
// It starts with one buffer and doubles them, up to udpBatch, each time a
// batch fills them all: a DNS lookup's flow keeps 64 KiB, as a single
// read would, and only a fast flow holds the 4 MiB of a full batch.
func pumpToLAN(lan *net.UDPConn, br netstack.BatchReader, ip4 bool, n *atomic.Int64) {
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
		k, err := br.ReadBatch(bufs, sizes)
		if err != nil {
			return
		}
		for i := range k {
			msgs[i].Buffers[0] = bufs[i][:sizes[i]]
		}
		if k == len(bufs) && k < udpBatch {
			for range min(k, udpBatch-k) {
				bufs = append(bufs, make([]byte, udpBufSize))
			}
		}
		for out := msgs[:k]; len(out) > 0; {
			sent, err := send(out, 0)
			switch {
			case err == nil:
				for _, m := range out[:sent] {
					n.Add(int64(m.N))
				}
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

// HandlePing implements netstack.FlowHandler: admit the echo request,
// then ping the real host and let the stack answer the client only if it
// answered. A refused request gets ICMP administratively prohibited and is
// never sent on. Each request is a flow of its own in the flow log.
func (c *Connector) HandlePing(ctx context.Context, f netstack.Flow, payload []byte) netstack.PingVerdict {
	d := admit(c.adm.Load(), f)
	if !d.allow {
		c.deny(f, d)
		return netstack.PingProhibited
	}
	rec := wire.FlowRecord{
		ID: c.ids.next(), User: d.client.user, Node: d.client.name,
		Src: f.Src, Dst: f.Dst, Proto: wire.ProtoICMP,
		Decision: wire.DecisionAllow, Rule: d.rule, Reason: d.reason,
		Start: time.Now(), BytesUp: uint64(len(payload)),
	}
	answered := c.ping(ctx, f.Dst.Addr(), payload)
	rec.End = time.Now()
	verdict := netstack.PingDrop
	if answered {
		verdict = netstack.PingReply
		rec.BytesDown = uint64(len(payload))
	} else {
		rec.Reason = clip(rec.Reason+"; no answer", maxReason)
	}
	c.records.Record(rec)
	return verdict
}
