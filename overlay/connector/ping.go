package connector

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// pingTimeout bounds how long a ping to a LAN host is waited for.
const pingTimeout = 2 * time.Second

// pinger sends ICMP echo requests to LAN hosts: through unprivileged ICMP
// sockets where the host allows them, else raw sockets if the process may
// open them, else not at all (and says so once).
type pinger struct {
	log  *slog.Logger
	once sync.Once
}

func newPinger(log *slog.Logger) *pinger { return &pinger{log: log} }

func (p *pinger) ping(ctx context.Context, dst netip.Addr, payload []byte) bool {
	network, raw, proto := "udp4", "ip4:icmp", 1
	var echo, reply icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	listen := "0.0.0.0"
	if dst.Is6() {
		network, raw, proto = "udp6", "ip6:ipv6-icmp", 58
		echo, reply = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
		listen = "::"
	}
	c, err := icmp.ListenPacket(network, listen)
	unprivileged := err == nil
	if err != nil {
		c, err = icmp.ListenPacket(raw, listen)
	}
	if err != nil {
		p.once.Do(func() {
			p.log.Warn("cannot ping LAN hosts: this process may open neither unprivileged nor raw ICMP sockets; allow unprivileged ping with: sysctl -w net.ipv4.ping_group_range='0 2147483647'", "err", err)
		})
		return false
	}
	defer c.Close()
	seq := rand.N(1 << 16)
	msg := icmp.Message{Type: echo, Body: &icmp.Echo{ID: os.Getpid() & 0xffff, Seq: seq, Data: payload}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return false
	}
	var to net.Addr = &net.IPAddr{IP: dst.AsSlice()}
	if unprivileged {
		to = &net.UDPAddr{IP: dst.AsSlice()}
	}
	if _, err := c.WriteTo(b, to); err != nil {
		return false
	}
	deadline := time.Now().Add(pingTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.SetReadDeadline(deadline)
	buf := make([]byte, 64<<10)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return false
		}
		if addrOf(from) != dst {
			continue
		}
		m, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil || m.Type != reply {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && e.Seq == seq {
			return true
		}
	}
}

func addrOf(a net.Addr) netip.Addr {
	var ip net.IP
	switch a := a.(type) {
	case *net.UDPAddr:
		ip = a.IP
	case *net.IPAddr:
		ip = a.IP
	default:
		return netip.Addr{}
	}
	addr, _ := netip.AddrFromSlice(ip)
	return addr.Unmap()
}
