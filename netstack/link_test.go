package netstack

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// recorder is a stack.NetworkDispatcher that keeps a copy of every packet
// delivered to it.
type recorder struct{ pkts [][]byte }

func (r *recorder) DeliverNetworkPacket(_ tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
	var b []byte
	for _, v := range pkt.AsSlices() {
		b = append(b, v...)
	}
	r.pkts = append(r.pkts, b)
}

func (*recorder) DeliverLinkPacket(tcpip.NetworkProtocolNumber, *stack.PacketBuffer) {}

// rawTCP builds one TCP packet whose payload bytes are the low bytes of
// their sequence numbers, so coalesced payloads can be checked.
func rawTCP(src, dst netip.AddrPort, seq uint32, flags header.TCPFlags, size int) []byte {
	const tcpLen = header.TCPMinimumSize
	s, d := tcpip.AddrFromSlice(src.Addr().AsSlice()), tcpip.AddrFromSlice(dst.Addr().AsSlice())
	ipLen := header.IPv4MinimumSize
	if src.Addr().Is6() {
		ipLen = header.IPv6MinimumSize
	}
	b := make([]byte, ipLen+tcpLen+size)
	if src.Addr().Is4() {
		ip := header.IPv4(b)
		ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(b)), TTL: 64, Protocol: uint8(header.TCPProtocolNumber), SrcAddr: s, DstAddr: d})
		ip.SetChecksum(^ip.CalculateChecksum())
	} else {
		header.IPv6(b).Encode(&header.IPv6Fields{PayloadLength: uint16(tcpLen + size), TransportProtocol: header.TCPProtocolNumber, HopLimit: 64, SrcAddr: s, DstAddr: d})
	}
	header.TCP(b[ipLen:]).Encode(&header.TCPFields{SrcPort: src.Port(), DstPort: dst.Port(), SeqNum: seq, AckNum: 7, DataOffset: tcpLen, Flags: flags, WindowSize: 1000})
	for i := range size {
		b[ipLen+tcpLen+i] = byte(seq + uint32(i))
	}
	return b
}

// delivered is what a test checks of one packet gVisor received.
type delivered struct {
	Src, Dst netip.AddrPort
	Seq      uint32
	Len      int // TCP payload bytes
}

// parseDelivered checks pkt's IP length and that its payload continues
// the sequence rawTCP wrote, and summarises it.
func parseDelivered(t *testing.T, pkt []byte) delivered {
	t.Helper()
	var src, dst tcpip.Address
	var th header.TCP
	if pkt[0]>>4 == 4 {
		ip := header.IPv4(pkt)
		if int(ip.TotalLength()) != len(pkt) {
			t.Errorf("ipv4 total length %d for a %d-byte packet", ip.TotalLength(), len(pkt))
		}
		src, dst, th = ip.SourceAddress(), ip.DestinationAddress(), header.TCP(ip.Payload())
	} else {
		ip := header.IPv6(pkt)
		if int(ip.PayloadLength())+header.IPv6MinimumSize != len(pkt) {
			t.Errorf("ipv6 payload length %d for a %d-byte packet", ip.PayloadLength(), len(pkt))
		}
		src, dst, th = ip.SourceAddress(), ip.DestinationAddress(), header.TCP(ip.Payload())
	}
	payload := th.Payload()
	for i, c := range payload {
		if want := byte(th.SequenceNumber() + uint32(i)); c != want {
			t.Errorf("payload byte %d of seq %d is %d, want %d", i, th.SequenceNumber(), c, want)
			break
		}
	}
	return delivered{Src: addrPort(src, th.SourcePort()), Dst: addrPort(dst, th.DestinationPort()), Seq: th.SequenceNumber(), Len: len(payload)}
}

// TestWriteCoalescesTCP checks the GRO on the way into gVisor: runs of
// consecutive same-sized segments of one flow in one Write reach gVisor as
// one packet, nothing is held after the Write, and no flow is reordered or
// loses a byte.
func TestWriteCoalescesTCP(t *testing.T) {
	a4 := netip.MustParseAddrPort("100.96.0.2:40000")
	b4 := netip.MustParseAddrPort("100.96.0.3:40001")
	lan := netip.MustParseAddrPort("192.0.2.10:443")
	a6 := netip.MustParseAddrPort("[fd7a:115c:a1e0::2]:40000")
	lan6 := netip.MustParseAddrPort("[2001:db8::10]:443")
	const ack = header.TCPFlagAck
	type seg struct {
		src, dst netip.AddrPort
		seq      uint32
		flags    header.TCPFlags
		size     int
	}
	tests := []struct {
		name string
		in   []seg
		want []delivered
	}{{
		name: "a run of one flow",
		in:   []seg{{a4, lan, 1000, ack, 1000}, {a4, lan, 2000, ack, 1000}, {a4, lan, 3000, ack, 1000}, {a4, lan, 4000, ack, 1000}},
		want: []delivered{{a4, lan, 1000, 4000}},
	}, {
		name: "a short segment with psh ends the run",
		in:   []seg{{a4, lan, 1000, ack, 1000}, {a4, lan, 2000, ack, 1000}, {a4, lan, 3000, ack | header.TCPFlagPsh, 300}, {a4, lan, 3300, ack, 1000}},
		want: []delivered{{a4, lan, 1000, 2300}, {a4, lan, 3300, 1000}},
	}, {
		name: "a gap splits the run",
		in:   []seg{{a4, lan, 1000, ack, 1000}, {a4, lan, 2000, ack, 1000}, {a4, lan, 4000, ack, 1000}, {a4, lan, 5000, ack, 1000}},
		want: []delivered{{a4, lan, 1000, 2000}, {a4, lan, 4000, 2000}},
	}, {
		name: "interleaved flows stay in order",
		in:   []seg{{a4, lan, 1000, ack, 1000}, {b4, lan, 9000, ack, 1000}, {a4, lan, 2000, ack, 1000}, {b4, lan, 10000, ack, 1000}},
		want: []delivered{{a4, lan, 1000, 2000}, {b4, lan, 9000, 2000}},
	}, {
		name: "ipv6",
		in:   []seg{{a6, lan6, 1000, ack, 1000}, {a6, lan6, 2000, ack, 1000}, {a6, lan6, 3000, ack, 1000}},
		want: []delivered{{a6, lan6, 1000, 3000}},
	}, {
		name: "a syn and a bare ack are not held",
		in:   []seg{{a4, lan, 1000, header.TCPFlagSyn, 0}, {b4, lan, 9000, ack, 0}},
		want: []delivered{{a4, lan, 1000, 0}, {b4, lan, 9000, 0}},
	}, {
		name: "at most 64 KiB per packet",
		in: func() []seg {
			var in []seg
			for i := range 60 {
				in = append(in, seg{a4, lan, uint32(1000 + 1200*i), ack, 1200})
			}
			return in
		}(),
		// 54 segments of 1200 bytes and their headers fit 64 KiB; 55 do not.
		want: []delivered{{a4, lan, 1000, 54 * 1200}, {a4, lan, 1000 + 54*1200, 6 * 1200}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLink(DefaultMTU)
			rec := &recorder{}
			l.Attach(rec)
			in := l.startInbound()
			if in == nil {
				t.Fatal("startInbound returned nil with a dispatcher attached")
			}
			for _, s := range tt.in {
				proto := header.IPv4ProtocolNumber
				if s.src.Addr().Is6() {
					proto = header.IPv6ProtocolNumber
				}
				in.add(proto, rawTCP(s.src, s.dst, s.seq, s.flags, s.size))
			}
			l.finishInbound(in)
			var got []delivered
			for _, p := range rec.pkts {
				got = append(got, parseDelivered(t, p))
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateComparable(netip.AddrPort{})); diff != "" {
				t.Errorf("delivered (-want +got):\n%s", diff)
			}
		})
	}
}

// TestStartInboundWithoutDispatcher checks that there is nothing to
// deliver to once the NIC is gone (Write then drops what it is given).
func TestStartInboundWithoutDispatcher(t *testing.T) {
	l := newLink(DefaultMTU)
	if in := l.startInbound(); in != nil {
		t.Errorf("startInbound = %v without a dispatcher, want nil", in)
	}
}
