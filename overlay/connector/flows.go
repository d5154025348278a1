package connector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

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

// udpIdle ends a UDP flow nobody used for this long.
const udpIdle = 60 * time.Second

// HandleUDP implements netstack.FlowHandler: one connected UDP socket per
// flow, copying datagrams both ways until either side ends.
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
	done := make(chan struct{}, 2)
	pump := func(dst, src net.Conn) {
		defer func() { done <- struct{}{} }()
		buf := make([]byte, 64<<10)
		for {
			src.SetReadDeadline(time.Now().Add(udpIdle))
			n, err := src.Read(buf)
			if err != nil {
				return
			}
			if _, err := dst.Write(buf[:n]); err != nil && !isTransient(err) {
				return
			}
		}
	}
	go pump(lan, tunnel)
	go pump(tunnel, lan)
	select {
	case <-done:
	case <-ctx.Done():
	}
	tunnel.Close()
	lan.Close()
	<-done
	<-done
}

// isTransient reports errors a UDP flow survives, such as an ICMP port
// unreachable reported on a connected socket.
func isTransient(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF)
}

// HandlePing implements netstack.FlowHandler: ping the real host and let
// the stack answer the client only if it answered.
func (c *Connector) HandlePing(ctx context.Context, f netstack.Flow, payload []byte) bool {
	if err := c.admit(f); err != nil {
		return false
	}
	return c.pinger.ping(ctx, f.Dst.Addr(), payload)
}
