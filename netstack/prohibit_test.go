package netstack

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// prohibition is a parsed ICMP administratively prohibited.
type prohibition struct {
	Src, Dst netip.Addr
	// The quoted packet: its addresses and transport protocol, and the
	// 8 bytes after its IP header.
	QSrc, QDst netip.Addr
	QProto     uint8
	QNext      []byte
}

// parseProhibited parses an ICMPv4 type 3 code 13 or ICMPv6 type 1 code 1
// and checks every checksum in it; ok is false for any other packet.
func parseProhibited(t *testing.T, pkt []byte) (prohibition, bool) {
	t.Helper()
	switch pkt[0] >> 4 {
	case 4:
		ip := header.IPv4(pkt)
		if ip.TransportProtocol() != header.ICMPv4ProtocolNumber {
			return prohibition{}, false
		}
		icmp := header.ICMPv4(ip.Payload())
		if icmp.Type() != header.ICMPv4DstUnreachable || icmp.Code() != header.ICMPv4AdminProhibited {
			return prohibition{}, false
		}
		if !ip.IsChecksumValid() {
			t.Errorf("bad ipv4 header checksum: % x", pkt)
		}
		if checksum.Checksum(icmp, 0) != 0xffff {
			t.Errorf("bad icmp checksum: % x", pkt)
		}
		q := header.IPv4(icmp[header.ICMPv4MinimumSize:])
		if len(q) < header.IPv4MinimumSize || len(q) != int(q.HeaderLength())+quoteLen {
			t.Fatalf("quoted %d bytes, want the ip header and %d more: % x", len(q), quoteLen, q)
		}
		return prohibition{
			Src: netip.AddrFrom4(ip.SourceAddress().As4()), Dst: netip.AddrFrom4(ip.DestinationAddress().As4()),
			QSrc: netip.AddrFrom4(q.SourceAddress().As4()), QDst: netip.AddrFrom4(q.DestinationAddress().As4()),
			QProto: q.Protocol(), QNext: q[q.HeaderLength():],
		}, true
	case 6:
		ip := header.IPv6(pkt)
		if ip.TransportProtocol() != header.ICMPv6ProtocolNumber {
			return prohibition{}, false
		}
		icmp := header.ICMPv6(ip.Payload())
		if icmp.Type() != header.ICMPv6DstUnreachable || icmp.Code() != header.ICMPv6Prohibited {
			return prohibition{}, false
		}
		want := header.ICMPv6Checksum(header.ICMPv6ChecksumParams{Header: icmp, Src: ip.SourceAddress(), Dst: ip.DestinationAddress()})
		if icmp.Checksum() != want {
			t.Errorf("bad icmpv6 checksum: % x", pkt)
		}
		q := header.IPv6(icmp[header.ICMPv6DstUnreachableMinimumSize:])
		if len(q) != header.IPv6MinimumSize+quoteLen {
			t.Fatalf("quoted %d bytes, want the ipv6 header and %d more: % x", len(q), quoteLen, q)
		}
		return prohibition{
			Src: netip.AddrFrom16(ip.SourceAddress().As16()), Dst: netip.AddrFrom16(ip.DestinationAddress().As16()),
			QSrc: netip.AddrFrom16(q.SourceAddress().As16()), QDst: netip.AddrFrom16(q.DestinationAddress().As16()),
			QProto: q.NextHeader(), QNext: q[header.IPv6MinimumSize:],
		}, true
	}
	return prohibition{}, false
}

// collectProhibited watches p's packets to the client for prohibitions.
func collectProhibited(t *testing.T, p *pair) func() []prohibition {
	var (
		mu  sync.Mutex
		got []prohibition
	)
	p.watch(func(pkt []byte) {
		if pr, ok := parseProhibited(t, pkt); ok {
			mu.Lock()
			got = append(got, pr)
			mu.Unlock()
		}
	})
	return func() []prohibition {
		mu.Lock()
		defer mu.Unlock()
		return append([]prohibition(nil), got...)
	}
}

// TestProhibitUDP checks that a handler refusing a UDP flow with Prohibit
// makes the stack send the client an ICMP administratively prohibited
// from the flow's destination, quoting the datagram's IP and UDP headers,
// and closes the flow.
func TestProhibitUDP(t *testing.T) {
	for _, tc := range []struct {
		name   string
		client netip.Addr
		dst    netip.AddrPort
	}{
		{"ipv4", clientV4, netip.MustParseAddrPort("192.0.2.20:53")},
		{"ipv6", clientV6, netip.MustParseAddrPort("[2001:db8::20]:53")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			flows := make(chan Flow, 4)
			h := &funcs{udp: func(ctx context.Context, f Flow, conn net.Conn) {
				flows <- f
				conn.(Prohibiter).Prohibit()
				conn.(Prohibiter).Prohibit() // a second call does nothing
			}}
			p := newPair(t, Config{Handler: h})
			got := collectProhibited(t, p)
			c, err := p.dialUDP(tc.dst)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			payload := []byte("who is there?")
			if _, err := c.Write(payload); err != nil {
				t.Fatal(err)
			}
			f := recv(t, "HandleUDP", flows)
			waitFor(t, "the prohibition", func() bool { return len(got()) == 1 })
			waitFor(t, "the flow to close", func() bool { return p.stack.Stats().UDPFlows == 0 })

			udp := make([]byte, quoteLen)
			h8 := header.UDP(udp)
			h8.SetSourcePort(f.Src.Port())
			h8.SetDestinationPort(tc.dst.Port())
			h8.SetLength(uint16(header.UDPMinimumSize + len(payload)))
			want := prohibition{
				Src: tc.dst.Addr(), Dst: tc.client,
				QSrc: tc.client, QDst: tc.dst.Addr(), QProto: uint8(header.UDPProtocolNumber),
				QNext: udp,
			}
			pr := got()[0]
			// The checksum is the client's to choose; the rest is known.
			pr.QNext = append([]byte(nil), pr.QNext...)
			header.UDP(pr.QNext).SetChecksum(0)
			if diff := cmp.Diff(want, pr, equateAddrs); diff != "" {
				t.Errorf("prohibition (-want +got):\n%s", diff)
			}
			if st := p.stack.Stats(); st.Prohibited != 1 {
				t.Errorf("Stats().Prohibited = %d, want 1", st.Prohibited)
			}
		})
	}
}

// TestPingProhibited checks that PingProhibited answers an echo request
// with an ICMP administratively prohibited quoting it, and no echo reply.
func TestPingProhibited(t *testing.T) {
	for _, tc := range []struct {
		name        string
		client, dst netip.Addr
		proto       uint8
	}{
		{"ipv4", clientV4, netip.MustParseAddr("192.0.2.50"), uint8(header.ICMPv4ProtocolNumber)},
		{"ipv6", clientV6, netip.MustParseAddr("2001:db8::50"), uint8(header.ICMPv6ProtocolNumber)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			h := &funcs{ping: func(context.Context, Flow, []byte) PingVerdict { return PingProhibited }}
			p := newPair(t, Config{Handler: h})
			var (
				mu      sync.Mutex
				replies int
				got     []prohibition
			)
			p.watch(func(pkt []byte) {
				mu.Lock()
				defer mu.Unlock()
				if _, ok := parseEchoReply(t, pkt); ok {
					replies++
				}
				if pr, ok := parseProhibited(t, pkt); ok {
					got = append(got, pr)
				}
			})
			req := echoPacket(tc.client, tc.dst, false, 9, 4, []byte("anyone?"))
			if _, err := p.stack.Write([][]byte{req}, 0); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the prohibition", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(got) == 1
			})
			waitFor(t, "HandlePing to return", func() bool { return p.stack.Stats().PingsInFlight == 0 })
			hlen := header.IPv4MinimumSize
			if tc.dst.Is6() {
				hlen = header.IPv6MinimumSize
			}
			want := prohibition{
				Src: tc.dst, Dst: tc.client, QSrc: tc.client, QDst: tc.dst, QProto: tc.proto,
				QNext: req[hlen : hlen+quoteLen], // type, code, checksum, identifier, sequence
			}
			mu.Lock()
			defer mu.Unlock()
			if diff := cmp.Diff(want, got[0], equateAddrs); diff != "" {
				t.Errorf("prohibition (-want +got):\n%s", diff)
			}
			if replies != 0 {
				t.Errorf("%d echo replies, want none", replies)
			}
		})
	}
}

// TestQuote checks what a prohibition quotes: the IP header with IPv4
// options, the first 8 bytes after it, and an IPv6 header whose
// extension headers are left out naming the transport protocol instead.
func TestQuote(t *testing.T) {
	v4 := make([]byte, 24) // a header with one word of options
	v4[0] = 0x46
	v6 := make([]byte, header.IPv6MinimumSize)
	v6[0] = 0x60
	v6[6] = uint8(header.IPv6FragmentExtHdrIdentifier)
	payload := []byte("0123456789")
	for _, tc := range []struct {
		name string
		ip   []byte
		want []byte
	}{
		{"ipv4 with options", v4, append(bytes.Clone(v4), "01234567"...)},
		{"ipv6 behind an extension header", v6, func() []byte {
			b := append(bytes.Clone(v6), "01234567"...)
			b[6] = uint8(header.UDPProtocolNumber)
			return b
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := quote(tc.ip, payload, header.UDPProtocolNumber)
			if !bytes.Equal(got, tc.want) {
				t.Errorf("quote = % x, want % x", got, tc.want)
			}
		})
	}
	if got := quote(v4, payload[:3], header.UDPProtocolNumber); len(got) != len(v4)+3 {
		t.Errorf("a short payload quotes %d bytes, want %d", len(got), len(v4)+3)
	}
	// No ICMP error for a packet to a broadcast, multicast or unspecified
	// address, nor from an address that is not unicast.
	ip4 := func(src, dst string) []byte {
		b := make([]byte, header.IPv4MinimumSize+quoteLen)
		header.IPv4(b).Encode(&header.IPv4Fields{
			TotalLength: uint16(len(b)), TTL: 64, Protocol: uint8(header.UDPProtocolNumber),
			SrcAddr: tcpip.AddrFrom4(netip.MustParseAddr(src).As4()), DstAddr: tcpip.AddrFrom4(netip.MustParseAddr(dst).As4()),
		})
		return b
	}
	ip6 := func(src, dst string) []byte {
		b := make([]byte, header.IPv6MinimumSize+quoteLen)
		header.IPv6(b).Encode(&header.IPv6Fields{
			PayloadLength: quoteLen, TransportProtocol: header.UDPProtocolNumber, HopLimit: 64,
			SrcAddr: tcpip.AddrFrom16(netip.MustParseAddr(src).As16()), DstAddr: tcpip.AddrFrom16(netip.MustParseAddr(dst).As16()),
		})
		return b
	}
	if prohibited(ip4("100.96.0.2", "192.0.2.1")) == nil || prohibited(ip6("fd7a:115c:a1e0::2", "2001:db8::1")) == nil {
		t.Fatal("no prohibition for unicast packets")
	}
	for _, bad := range [][]byte{
		nil, {0x45}, make([]byte, 30),
		ip4("100.96.0.2", "255.255.255.255"), ip4("100.96.0.2", "224.0.0.1"), ip4("100.96.0.2", "0.0.0.0"), ip4("0.0.0.0", "192.0.2.1"),
		ip6("fd7a:115c:a1e0::2", "ff02::1"), ip6("fd7a:115c:a1e0::2", "::"), ip6("::", "2001:db8::1"),
	} {
		if b := prohibited(bad); b != nil {
			t.Errorf("prohibited(% x) = % x, want nil", bad, b)
		}
	}
}
