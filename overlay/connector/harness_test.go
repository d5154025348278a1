package connector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/tun"
	wgnetstack "golang.zx2c4.com/wireguard/tun/netstack"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/warrennet/warren/overlay/wire"
)

// The lab: a Connector's real stack and admission, without WireGuard or
// a coordinator. Tests inject raw packets into the stack as a client (or
// an attacker) would send them through the tunnel, or open real flows
// from clients on gVisor stacks of their own (wireguard-go's
// tun/netstack); every packet the stack sends back is kept. The
// connector's Dial and ping are hooks that log every call.

const testTimeout = 10 * time.Second

// waitFor polls cond until it holds or testTimeout passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// The lab's nodes.
var (
	selfAddr  = netip.MustParseAddr("100.96.0.1")
	aliceAddr = netip.MustParseAddr("100.96.0.2")
	bobAddr   = netip.MustParseAddr("100.96.0.3")
	// alice6 is a client with an IPv6 overlay address, so that the lab
	// can send IPv6 flows from an enrolled client.
	alice6Addr = netip.MustParseAddr("fd7a:115c:a1e0::2")
	strayAddr  = netip.MustParseAddr("100.96.0.99") // not enrolled
)

func peer(name, user string, addr netip.Addr, grants ...wire.Grant) wire.Peer {
	return wire.Peer{Node: wire.Node{Name: name, Role: wire.RoleClient, Address: addr, User: user}, Grants: grants}
}

func grant(prefix string, ports string, proto wire.Proto, rule int) wire.Grant {
	pr, err := wire.ParsePortRange(ports)
	if err != nil {
		panic(err)
	}
	return wire.Grant{Prefix: netip.MustParsePrefix(prefix), Ports: pr, Proto: proto, Rule: rule}
}

// netMap is the connector "office"'s netmap: it serves served (a "+"
// suffix asks for PROXY v2, a "!" suffix allows the connector host's
// addresses), enforces a policy if enforced, and has peers.
func netMap(served []string, enforced bool, peers ...wire.Peer) *wire.NetMap {
	nm := &wire.NetMap{
		Version: 1,
		Self:    wire.Node{Name: "office", Role: wire.RoleConnector, Address: selfAddr},
		Peers:   peers,
		Policy:  wire.NetMapPolicy{Enforced: enforced},
	}
	for _, s := range served {
		p, host := strings.CutSuffix(s, "!")
		p, proxy := strings.CutSuffix(p, "+")
		nm.Routes = append(nm.Routes, wire.Route{Prefix: netip.MustParsePrefix(p), Connector: "office", ProxyProtocol: proxy, AllowConnectorHost: host})
	}
	return nm
}

// recs is a recorder that keeps every record.
type recs struct {
	mu  sync.Mutex
	all []wire.FlowRecord
}

func (r *recs) Record(rec wire.FlowRecord) {
	if err := (wire.FlowReport{Records: []wire.FlowRecord{rec}}).Validate(); err != nil {
		panic(fmt.Sprintf("an invalid record %+v: %v", rec, err))
	}
	r.mu.Lock()
	r.all = append(r.all, rec)
	r.mu.Unlock()
}

func (r *recs) list() []wire.FlowRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.all)
}

// find returns the records that match.
func (r *recs) find(match func(wire.FlowRecord) bool) []wire.FlowRecord {
	var out []wire.FlowRecord
	for _, rec := range r.list() {
		if match(rec) {
			out = append(out, rec)
		}
	}
	return out
}

type dialCall struct {
	network string
	addr    string
}

type lab struct {
	t    *testing.T
	c    *Connector
	recs *recs

	// lan maps a destination ("tcp 192.0.2.10:80") to the loopback
	// address the Dial hook connects it to. Loopback destinations and the
	// host's own addresses are dialled for real: a broken admission hits
	// the decoys listening there.
	lan map[string]string
	// pingable are the LAN hosts the ping hook says answered.
	pingable map[netip.Addr]bool

	mu      sync.Mutex // guards the fields below
	dials   []dialCall
	pings   []netip.Addr
	out     [][]byte // every packet the stack sent
	clients map[netip.Addr]tun.Device

	pumps sync.WaitGroup
}

// newLab starts a connector stack whose Dial and ping are the lab's
// hooks, with lan and pingable as above.
func newLab(t *testing.T, lan map[string]string, pingable ...netip.Addr) *lab {
	t.Helper()
	l := &lab{t: t, recs: &recs{}, lan: lan, pingable: map[netip.Addr]bool{}, clients: map[netip.Addr]tun.Device{}}
	for _, a := range pingable {
		l.pingable[a] = true
	}
	cfg := Config{
		Logger:      slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		DialTimeout: 2 * time.Second,
		Dial:        l.dial,
	}.withDefaults()
	c, err := newConnector(cfg, wire.Node{Name: "office", Role: wire.RoleConnector, Address: selfAddr}, l.recs)
	if err != nil {
		t.Fatal(err)
	}
	c.ping = l.ping
	l.c = c
	l.pumps.Add(1)
	go l.pumpOut()
	t.Cleanup(l.close)
	return l
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// close stops the stack (every handler returns), then the clients.
func (l *lab) close() {
	l.c.stack.Close()
	l.mu.Lock()
	devs := make([]tun.Device, 0, len(l.clients))
	for _, d := range l.clients {
		devs = append(devs, d)
	}
	l.mu.Unlock()
	for _, d := range devs {
		d.Close()
	}
	l.pumps.Wait()
}

// apply installs nm's admission state as apply does, with host as the
// connector host's addresses, and returns the flows it cut.
func (l *lab) apply(nm *wire.NetMap, host ...netip.Addr) int {
	l.t.Helper()
	a, err := newAdmission(nm, append(host, selfAddr))
	if err != nil {
		l.t.Fatal(err)
	}
	return l.c.install(a)
}

func (l *lab) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	l.mu.Lock()
	l.dials = append(l.dials, dialCall{network, addr})
	l.mu.Unlock()
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	if to, ok := l.lan[network+" "+addr]; ok {
		return d.DialContext(ctx, network, to)
	}
	if ap.Addr().Unmap().IsLoopback() || isHost(l.c.adm.Load().host, ap.Addr()) {
		return d.DialContext(ctx, network, addr) // a decoy, if admission is broken
	}
	return nil, errors.New("connection refused (lab)")
}

func (l *lab) ping(ctx context.Context, dst netip.Addr, payload []byte) bool {
	l.mu.Lock()
	l.pings = append(l.pings, dst)
	l.mu.Unlock()
	return l.pingable[dst]
}

func (l *lab) dialed() []dialCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.dials)
}

func (l *lab) pinged() []netip.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.pings)
}

// pumpOut takes every packet the stack sends: it keeps a copy and hands
// it to the client it is addressed to, if that client is on a stack.
func (l *lab) pumpOut() {
	defer l.pumps.Done()
	bufs := make([][]byte, 128)
	for i := range bufs {
		bufs[i] = make([]byte, 65536)
	}
	sizes := make([]int, len(bufs))
	for {
		n, err := l.c.stack.Read(bufs, sizes, 0)
		if err != nil {
			return
		}
		for i := range n {
			pkt := slices.Clone(bufs[i][:sizes[i]])
			l.mu.Lock()
			l.out = append(l.out, pkt)
			dev := l.clients[dstOf(pkt)]
			l.mu.Unlock()
			if dev != nil {
				dev.Write([][]byte{pkt}, 0)
			}
		}
	}
}

// client starts a client with address addr on a gVisor stack of its own,
// whose packets go to the connector's stack.
func (l *lab) client(addr netip.Addr) *wgnetstack.Net {
	l.t.Helper()
	dev, tnet, err := wgnetstack.CreateNetTUN([]netip.Addr{addr}, nil, 1280)
	if err != nil {
		l.t.Fatal(err)
	}
	l.mu.Lock()
	l.clients[addr] = dev
	l.mu.Unlock()
	l.pumps.Add(1)
	go func() {
		defer l.pumps.Done()
		bufs := [][]byte{make([]byte, 65536)}
		sizes := []int{0}
		for {
			n, err := dev.Read(bufs, sizes, 0)
			if err != nil {
				return
			}
			if n == 1 {
				if _, err := l.c.stack.Write([][]byte{bufs[0][:sizes[0]]}, 0); err != nil {
					return
				}
			}
		}
	}()
	return tnet
}

// inject writes a raw packet into the stack, as if it came through the
// tunnel.
func (l *lab) inject(pkt []byte) {
	l.t.Helper()
	if _, err := l.c.stack.Write([][]byte{pkt}, 0); err != nil {
		l.t.Fatal(err)
	}
}

// answers returns the kinds of the packets the stack sent to src from
// dst ("rst", "synack", "prohibited", "echo-reply", or "other").
func (l *lab) answers(src, dst netip.Addr) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, pkt := range l.out {
		if kind, from, to := classify(pkt); to == src && (from == dst || from == dst.Unmap() || (kind == "prohibited" && from.Unmap() == dst.Unmap())) {
			out = append(out, kind)
		}
	}
	return out
}

func dstOf(pkt []byte) netip.Addr {
	switch pkt[0] >> 4 {
	case 4:
		return netip.AddrFrom4(header.IPv4(pkt).DestinationAddress().As4())
	case 6:
		return netip.AddrFrom16(header.IPv6(pkt).DestinationAddress().As16())
	}
	return netip.Addr{}
}

// classify names a packet from the stack and its addresses.
func classify(pkt []byte) (kind string, src, dst netip.Addr) {
	var proto uint8
	var payload []byte
	switch pkt[0] >> 4 {
	case 4:
		ip := header.IPv4(pkt)
		src, dst = netip.AddrFrom4(ip.SourceAddress().As4()), netip.AddrFrom4(ip.DestinationAddress().As4())
		proto, payload = ip.Protocol(), ip.Payload()
	case 6:
		ip := header.IPv6(pkt)
		src, dst = netip.AddrFrom16(ip.SourceAddress().As16()), netip.AddrFrom16(ip.DestinationAddress().As16())
		proto, payload = ip.NextHeader(), ip.Payload()
	default:
		return "other", src, dst
	}
	switch proto {
	case uint8(header.TCPProtocolNumber):
		f := header.TCP(payload).Flags()
		switch {
		case f.Contains(header.TCPFlagRst):
			return "rst", src, dst
		case f.Contains(header.TCPFlagSyn | header.TCPFlagAck):
			return "synack", src, dst
		}
	case uint8(header.ICMPv4ProtocolNumber):
		icmp := header.ICMPv4(payload)
		switch {
		case icmp.Type() == header.ICMPv4DstUnreachable && icmp.Code() == header.ICMPv4AdminProhibited:
			return "prohibited", src, dst
		case icmp.Type() == header.ICMPv4EchoReply:
			return "echo-reply", src, dst
		}
	case uint8(header.ICMPv6ProtocolNumber):
		icmp := header.ICMPv6(payload)
		switch {
		case icmp.Type() == header.ICMPv6DstUnreachable && icmp.Code() == header.ICMPv6Prohibited:
			return "prohibited", src, dst
		case icmp.Type() == header.ICMPv6EchoReply:
			return "echo-reply", src, dst
		}
	}
	return "other", src, dst
}

// Raw packets, as a client's stack (or an attacker's) would send them.

// ipPacket wraps a transport payload in an IPv4 or IPv6 header.
func ipPacket(src, dst netip.Addr, proto tcpip.TransportProtocolNumber, payload []byte) []byte {
	if src.Is4() && dst.Is4() {
		b := make([]byte, header.IPv4MinimumSize+len(payload))
		ip := header.IPv4(b)
		ip.Encode(&header.IPv4Fields{
			TotalLength: uint16(len(b)), TTL: 64, Protocol: uint8(proto),
			SrcAddr: tcpip.AddrFrom4(src.As4()), DstAddr: tcpip.AddrFrom4(dst.As4()),
		})
		ip.SetChecksum(^ip.CalculateChecksum())
		copy(b[header.IPv4MinimumSize:], payload)
		return b
	}
	b := make([]byte, header.IPv6MinimumSize+len(payload))
	header.IPv6(b).Encode(&header.IPv6Fields{
		PayloadLength: uint16(len(payload)), TransportProtocol: proto, HopLimit: 64,
		SrcAddr: tcpip.AddrFrom16(src.As16()), DstAddr: tcpip.AddrFrom16(dst.As16()),
	})
	copy(b[header.IPv6MinimumSize:], payload)
	return b
}

func addrOfNetip(a netip.Addr) tcpip.Address {
	if a.Is4() {
		return tcpip.AddrFrom4(a.As4())
	}
	return tcpip.AddrFrom16(a.As16())
}

// synPacket is a TCP SYN from src to dst.
func synPacket(src, dst netip.AddrPort) []byte {
	t := make([]byte, header.TCPMinimumSize)
	h := header.TCP(t)
	h.Encode(&header.TCPFields{
		SrcPort: src.Port(), DstPort: dst.Port(), SeqNum: 1000,
		DataOffset: header.TCPMinimumSize, Flags: header.TCPFlagSyn, WindowSize: 65535,
	})
	sum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, addrOfNetip(src.Addr()), addrOfNetip(dst.Addr()), uint16(len(t)))
	h.SetChecksum(^checksum.Checksum(t, sum))
	return ipPacket(src.Addr(), dst.Addr(), header.TCPProtocolNumber, t)
}

// udpPacket is a UDP datagram from src to dst.
func udpPacket(src, dst netip.AddrPort, data []byte) []byte {
	u := make([]byte, header.UDPMinimumSize+len(data))
	h := header.UDP(u)
	h.Encode(&header.UDPFields{SrcPort: src.Port(), DstPort: dst.Port(), Length: uint16(len(u))})
	copy(u[header.UDPMinimumSize:], data)
	sum := header.PseudoHeaderChecksum(header.UDPProtocolNumber, addrOfNetip(src.Addr()), addrOfNetip(dst.Addr()), uint16(len(u)))
	h.SetChecksum(^checksum.Checksum(u, sum))
	return ipPacket(src.Addr(), dst.Addr(), header.UDPProtocolNumber, u)
}

// echoPacket is an ICMP or ICMPv6 echo request from src to dst.
func echoPacket(src, dst netip.Addr, seq uint16) []byte {
	msg := make([]byte, 8+4)
	msg[7] = byte(seq)
	copy(msg[8:], "ping")
	if src.Is4() {
		msg[0] = byte(header.ICMPv4Echo)
		icmp := header.ICMPv4(msg)
		icmp.SetChecksum(^checksum.Checksum(icmp, 0))
		return ipPacket(src, dst, header.ICMPv4ProtocolNumber, msg)
	}
	msg[0] = byte(header.ICMPv6EchoRequest)
	icmp := header.ICMPv6(msg)
	icmp.SetChecksum(header.ICMPv6Checksum(header.ICMPv6ChecksumParams{Header: icmp, Src: addrOfNetip(src), Dst: addrOfNetip(dst)}))
	return ipPacket(src, dst, header.ICMPv6ProtocolNumber, msg)
}
