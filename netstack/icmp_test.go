package netstack

import (
	"bytes"
	"context"
	"encoding/binary"
	"net/netip"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// echoPacket builds an ICMP or ICMPv6 echo request (or reply) with valid
// checksums.
func echoPacket(src, dst netip.Addr, reply bool, id, seq uint16, data []byte) []byte {
	msg := make([]byte, 8+len(data))
	binary.BigEndian.PutUint16(msg[4:], id)
	binary.BigEndian.PutUint16(msg[6:], seq)
	copy(msg[8:], data)
	if src.Is4() {
		msg[0] = byte(header.ICMPv4Echo)
		if reply {
			msg[0] = byte(header.ICMPv4EchoReply)
		}
		b := make([]byte, header.IPv4MinimumSize+len(msg))
		ip := header.IPv4(b)
		ip.Encode(&header.IPv4Fields{
			TotalLength: uint16(len(b)),
			TTL:         64,
			Protocol:    uint8(header.ICMPv4ProtocolNumber),
			SrcAddr:     tcpip.AddrFrom4(src.As4()),
			DstAddr:     tcpip.AddrFrom4(dst.As4()),
		})
		ip.SetChecksum(^ip.CalculateChecksum())
		copy(b[header.IPv4MinimumSize:], msg)
		icmp := header.ICMPv4(b[header.IPv4MinimumSize:])
		icmp.SetChecksum(^checksum.Checksum(icmp, 0))
		return b
	}
	msg[0] = byte(header.ICMPv6EchoRequest)
	if reply {
		msg[0] = byte(header.ICMPv6EchoReply)
	}
	b := make([]byte, header.IPv6MinimumSize+len(msg))
	s, d := tcpip.AddrFrom16(src.As16()), tcpip.AddrFrom16(dst.As16())
	header.IPv6(b).Encode(&header.IPv6Fields{
		PayloadLength:     uint16(len(msg)),
		TransportProtocol: header.ICMPv6ProtocolNumber,
		HopLimit:          64,
		SrcAddr:           s,
		DstAddr:           d,
	})
	copy(b[header.IPv6MinimumSize:], msg)
	icmp := header.ICMPv6(b[header.IPv6MinimumSize:])
	icmp.SetChecksum(header.ICMPv6Checksum(header.ICMPv6ChecksumParams{Header: icmp, Src: s, Dst: d}))
	return b
}

// equateAddrs lets cmp compare netip values.
var equateAddrs = cmpopts.EquateComparable(netip.Addr{}, netip.AddrPort{})

// echo is a parsed echo reply.
type echo struct {
	Src, Dst netip.Addr
	ID, Seq  uint16
	Data     string
}

// parseEchoReply parses an echo reply and checks every checksum in it.
func parseEchoReply(t *testing.T, pkt []byte) (echo, bool) {
	switch pkt[0] >> 4 {
	case 4:
		ip := header.IPv4(pkt)
		if ip.TransportProtocol() != header.ICMPv4ProtocolNumber {
			return echo{}, false
		}
		icmp := header.ICMPv4(ip.Payload())
		if icmp.Type() != header.ICMPv4EchoReply {
			return echo{}, false
		}
		if !ip.IsChecksumValid() {
			t.Errorf("echo reply with a bad ipv4 header checksum: % x", pkt)
		}
		if checksum.Checksum(icmp, 0) != 0xffff {
			t.Errorf("echo reply with a bad icmp checksum: % x", pkt)
		}
		return echo{
			Src: netip.AddrFrom4(ip.SourceAddress().As4()), Dst: netip.AddrFrom4(ip.DestinationAddress().As4()),
			ID: icmp.Ident(), Seq: icmp.Sequence(), Data: string(icmp.Payload()),
		}, true
	case 6:
		ip := header.IPv6(pkt)
		if ip.TransportProtocol() != header.ICMPv6ProtocolNumber {
			return echo{}, false
		}
		icmp := header.ICMPv6(ip.Payload())
		if icmp.Type() != header.ICMPv6EchoReply {
			return echo{}, false
		}
		want := header.ICMPv6Checksum(header.ICMPv6ChecksumParams{Header: icmp, Src: ip.SourceAddress(), Dst: ip.DestinationAddress()})
		if icmp.Checksum() != want {
			t.Errorf("echo reply with a bad icmpv6 checksum: % x", pkt)
		}
		return echo{
			Src: netip.AddrFrom16(ip.SourceAddress().As16()), Dst: netip.AddrFrom16(ip.DestinationAddress().As16()),
			ID: icmp.Ident(), Seq: icmp.Sequence(), Data: string(icmp.Payload()),
		}, true
	}
	return echo{}, false
}

func TestPing(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		client, node         netip.Addr
		answered, unanswered netip.Addr
	}{
		{"ipv4", clientV4, nodeV4, netip.MustParseAddr("192.0.2.50"), netip.MustParseAddr("192.0.2.51")},
		{"ipv6", clientV6, nodeV6, netip.MustParseAddr("2001:db8::50"), netip.MustParseAddr("2001:db8::51")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			type call struct {
				Flow    Flow
				Payload string
			}
			calls := make(chan call, 10)
			h := &funcs{ping: func(ctx context.Context, f Flow, payload []byte) PingVerdict {
				calls <- call{f, string(payload)}
				if f.Dst.Addr() == tc.answered {
					return PingReply
				}
				return PingDrop
			}}
			p := newPair(t, Config{Handler: h})
			var (
				mu      sync.Mutex
				replies []echo
			)
			p.watch(func(pkt []byte) {
				if e, ok := parseEchoReply(t, pkt); ok {
					mu.Lock()
					replies = append(replies, e)
					mu.Unlock()
				}
			})
			seen := func(n int) func() bool {
				return func() bool {
					mu.Lock()
					defer mu.Unlock()
					return len(replies) >= n
				}
			}
			ping := func(dst netip.Addr, seq uint16, data string) {
				t.Helper()
				pkt := echoPacket(tc.client, dst, false, 7, seq, []byte(data))
				if _, err := p.stack.Write([][]byte{pkt}, 0); err != nil {
					t.Fatal(err)
				}
			}

			// The handler says no: no reply.
			ping(tc.unanswered, 1, "unanswered")
			c := recv(t, "HandlePing", calls)
			if diff := cmp.Diff(call{Flow{netip.AddrPortFrom(tc.client, 0), netip.AddrPortFrom(tc.unanswered, 0), ProtoICMP}, "unanswered"}, c, equateAddrs); diff != "" {
				t.Errorf("HandlePing call (-want +got):\n%s", diff)
			}
			waitFor(t, "HandlePing to return", func() bool { return p.stack.Stats().PingsInFlight == 0 })

			// The handler says yes: a reply from the foreign address.
			ping(tc.answered, 2, "answered")
			recv(t, "HandlePing", calls)
			waitFor(t, "the echo reply", seen(1))

			// Our own address: gVisor answers, the handler is not asked.
			ping(tc.node, 3, "own")
			waitFor(t, "the echo reply from the node", seen(2))

			mu.Lock()
			defer mu.Unlock()
			want := []echo{
				{Src: tc.answered, Dst: tc.client, ID: 7, Seq: 2, Data: "answered"},
				{Src: tc.node, Dst: tc.client, ID: 7, Seq: 3, Data: "own"},
			}
			if diff := cmp.Diff(want, replies, equateAddrs); diff != "" {
				t.Errorf("echo replies (-want +got):\n%s", diff)
			}
			select {
			case c := <-calls:
				t.Errorf("unexpected HandlePing %v", c)
			default:
			}
			if st := p.stack.Stats(); st.PingsAnswered != 1 {
				t.Errorf("PingsAnswered = %d, want 1", st.PingsAnswered)
			}
		})
	}
}

func TestParseEchoRequest(t *testing.T) {
	src, dst := clientV4, netip.MustParseAddr("192.0.2.50")
	good := echoPacket(src, dst, false, 1, 1, []byte("data"))
	badSum := bytes.Clone(good)
	badSum[len(badSum)-1] ^= 0xff
	reply := echoPacket(src, dst, true, 1, 1, []byte("data"))
	firstFrag := bytes.Clone(good)
	header.IPv4(firstFrag).SetFlagsFragmentOffset(header.IPv4FlagMoreFragments, 0)
	laterFrag := bytes.Clone(good)
	header.IPv4(laterFrag).SetFlagsFragmentOffset(0, 8)
	truncated := good[:len(good)-1]

	good6 := echoPacket(clientV6, netip.MustParseAddr("2001:db8::50"), false, 1, 1, []byte("data"))
	// The same request behind a first-fragment header.
	frag6 := make([]byte, 0, len(good6)+8)
	frag6 = append(frag6, good6[:header.IPv6MinimumSize]...)
	frag6 = append(frag6, byte(header.ICMPv6ProtocolNumber), 0, 0, 1 /* M */, 0, 0, 0, 9)
	frag6 = append(frag6, good6[header.IPv6MinimumSize:]...)
	frag6[6] = byte(header.IPv6FragmentExtHdrIdentifier)
	binary.BigEndian.PutUint16(frag6[4:], uint16(len(frag6)-header.IPv6MinimumSize))

	for _, tc := range []struct {
		name      string
		pkt       []byte
		ok, whole bool
	}{
		{"ipv4 request", good, true, true},
		{"ipv4 bad checksum", badSum, false, false},
		{"ipv4 reply", reply, false, false},
		{"ipv4 first fragment", firstFrag, true, false},
		{"ipv4 later fragment", laterFrag, false, false},
		{"ipv4 truncated", truncated, false, false},
		{"ipv6 request", good6, true, true},
		{"ipv6 first fragment", frag6, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, whole, ok := parseEchoRequest(tc.pkt)
			if ok != tc.ok || whole != tc.whole {
				t.Fatalf("parseEchoRequest = whole %v ok %v, want whole %v ok %v", whole, ok, tc.whole, tc.ok)
			}
			if ok && whole {
				// The reply we would build parses back with good checksums.
				got, isReply := parseEchoReply(t, req.reply())
				if !isReply || got.Data != "data" || got.Src != req.dst || got.Dst != req.src {
					t.Errorf("reply = %+v", got)
				}
			}
		})
	}
}
