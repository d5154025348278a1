package netstack

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// withTimestamp returns p (from rawTCP, IPv4) with a TCP timestamp option
// carrying tsval, as Linux sends every segment.
func withTimestamp(p []byte, tsval uint32) []byte {
	const ipLen, optLen = header.IPv4MinimumSize, 12
	b := make([]byte, 0, len(p)+optLen)
	b = append(b, p[:ipLen+header.TCPMinimumSize]...)
	b = append(b, 1, 1, 8, 10) // NOP, NOP, timestamp, length 10
	b = binary.BigEndian.AppendUint32(b, tsval)
	b = binary.BigEndian.AppendUint32(b, 0)
	b = append(b, p[ipLen+header.TCPMinimumSize:]...)
	ip := header.IPv4(b)
	ip.SetTotalLength(uint16(len(b)))
	ip.SetChecksum(0)
	ip.SetChecksum(^ip.CalculateChecksum())
	header.TCP(b[ipLen:]).SetDataOffset(header.TCPMinimumSize + optLen)
	return b
}

// rawUDP builds a UDP packet (IPv4) of size payload bytes.
func rawUDP(src, dst netip.AddrPort, size int) []byte {
	b := make([]byte, header.IPv4MinimumSize+header.UDPMinimumSize+size)
	ip := header.IPv4(b)
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(b)), TTL: 64, Protocol: uint8(header.UDPProtocolNumber),
		SrcAddr: tcpip.AddrFromSlice(src.Addr().AsSlice()), DstAddr: tcpip.AddrFromSlice(dst.Addr().AsSlice())})
	ip.SetChecksum(^ip.CalculateChecksum())
	header.UDP(b[header.IPv4MinimumSize:]).Encode(&header.UDPFields{SrcPort: src.Port(), DstPort: dst.Port(), Length: uint16(header.UDPMinimumSize + size)})
	return b
}

// coalesce runs pkts through one coalescer, as one Write does, and
// returns copies of what it delivered, in order.
func coalesce(pkts [][]byte) [][]byte {
	rec := &recorder{}
	c := coalescer{deliver: func(_ tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) { rec.DeliverNetworkPacket(0, pkt) }}
	for _, p := range pkts {
		proto := header.IPv4ProtocolNumber
		if p[0]>>4 == 6 {
			proto = header.IPv6ProtocolNumber
		}
		c.add(proto, p)
	}
	c.flush()
	return rec.pkts
}

// TestCoalescerRules checks what must match for segments to merge, and
// that what cannot merge goes to gVisor unchanged and in order within its
// flow.
func TestCoalescerRules(t *testing.T) {
	a := netip.MustParseAddrPort("100.96.0.2:40000")
	lan := netip.MustParseAddrPort("192.0.2.10:443")
	const ack = header.TCPFlagAck
	flow := func(f int) netip.AddrPort { return netip.AddrPortFrom(a.Addr(), uint16(50000+f)) }
	seg := func(seq uint32, size int) []byte { return rawTCP(a, lan, seq, ack, size) }
	set := func(p []byte, f func(header.TCP)) []byte { f(header.TCP(p[header.IPv4MinimumSize:])); return p }
	tests := []struct {
		name string
		in   [][]byte
		want []delivered
	}{{
		name: "equal timestamps merge",
		in:   [][]byte{withTimestamp(seg(1000, 1000), 5), withTimestamp(seg(2000, 1000), 5)},
		want: []delivered{{a, lan, 1000, 2000}},
	}, {
		name: "a new timestamp starts a run",
		in:   [][]byte{withTimestamp(seg(1000, 1000), 5), withTimestamp(seg(2000, 1000), 6), withTimestamp(seg(3000, 1000), 6)},
		want: []delivered{{a, lan, 1000, 1000}, {a, lan, 2000, 2000}},
	}, {
		name: "a new acknowledgement number starts a run",
		in:   [][]byte{seg(1000, 1000), set(seg(2000, 1000), func(h header.TCP) { h.SetAckNumber(8) })},
		want: []delivered{{a, lan, 1000, 1000}, {a, lan, 2000, 1000}},
	}, {
		name: "a new window starts a run",
		in:   [][]byte{seg(1000, 1000), set(seg(2000, 1000), func(h header.TCP) { h.SetWindowSize(2000) })},
		want: []delivered{{a, lan, 1000, 1000}, {a, lan, 2000, 1000}},
	}, {
		name: "a segment larger than the first starts a run",
		in:   [][]byte{seg(1000, 500), seg(1500, 1000), seg(2500, 1000)},
		want: []delivered{{a, lan, 1000, 500}, {a, lan, 1500, 2000}},
	}, {
		name: "a fin goes after the run it follows",
		in:   [][]byte{seg(1000, 1000), seg(2000, 1000), rawTCP(a, lan, 3000, ack|header.TCPFlagFin, 0)},
		want: []delivered{{a, lan, 1000, 2000}, {a, lan, 3000, 0}},
	}, {
		name: "a retransmission goes after the run",
		in:   [][]byte{seg(1000, 1000), seg(2000, 1000), seg(1000, 1000)},
		want: []delivered{{a, lan, 1000, 2000}, {a, lan, 1000, 1000}},
	}, {
		name: "udp passes a run untouched",
		in:   [][]byte{seg(1000, 1000), rawUDP(a, lan, 100), seg(2000, 1000)},
		want: []delivered{{Len: -1}, {a, lan, 1000, 2000}},
	}, {
		name: "ipv4 options are not merged",
		in: func() [][]byte {
			p := seg(1000, 1000)
			ip := header.IPv4(p)
			ip.SetHeaderLength(24) // claims options; parseGROSegment refuses it
			return [][]byte{p, seg(2000, 1000), seg(3000, 1000)}
		}(),
		want: []delivered{{Len: -2}, {a, lan, 2000, 2000}},
	}, {
		name: "the ninth flow evicts the oldest run",
		in: func() [][]byte {
			var in [][]byte
			for f := range maxRuns + 1 {
				in = append(in, rawTCP(flow(f), lan, 1000, ack, 1000))
			}
			// Flow 0's run went to make room: this starts another.
			return append(in, rawTCP(flow(0), lan, 2000, ack, 1000))
		}(),
		want: func() []delivered {
			want := []delivered{{flow(0), lan, 1000, 1000}}
			for f := 1; f <= maxRuns; f++ {
				want = append(want, delivered{flow(f), lan, 1000, 1000})
			}
			return append(want, delivered{flow(0), lan, 2000, 1000})
		}(),
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []delivered
			for _, p := range coalesce(tt.in) {
				switch {
				case header.IPv4(p).Protocol() == uint8(header.UDPProtocolNumber):
					got = append(got, delivered{Len: -1})
				case header.IPv4(p).HeaderLength() != header.IPv4MinimumSize:
					got = append(got, delivered{Len: -2})
				default:
					checkIPv4Checksum(t, p)
					got = append(got, parseDelivered(t, p))
				}
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateComparable(netip.AddrPort{})); diff != "" {
				t.Errorf("delivered (-want +got):\n%s", diff)
			}
		})
	}
}

func checkIPv4Checksum(t *testing.T, p []byte) {
	t.Helper()
	if p[0]>>4 == 4 && !header.IPv4(p).IsChecksumValid() {
		t.Errorf("ipv4 header checksum of a %d-byte packet is wrong", len(p))
	}
}

// FuzzCoalescer feeds the coalescer arbitrary runs of segments of a few
// flows and checks what it must never break: every packet it delivers is
// well formed, and each flow's segments arrive in the order they were
// written, with every byte, whatever was merged.
func FuzzCoalescer(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 1, 0, 0, 2, 0, 0})
	f.Add([]byte{0x10, 3, 0x21, 0x32, 0x40, 0x55, 0x66, 0x07, 0x88, 0x99})
	f.Fuzz(func(t *testing.T, ops []byte) {
		lan := netip.MustParseAddrPort("192.0.2.10:443")
		lan6 := netip.MustParseAddrPort("[2001:db8::10]:443")
		const flows = 3
		var next [flows]uint32
		type sent struct {
			seq  uint32
			size int
		}
		var want [flows][]sent
		var pkts [][]byte
		for i := 0; i+1 < len(ops) && len(pkts) < 200; i += 2 {
			op, arg := ops[i], ops[i+1]
			fl := int(op) % flows
			src := netip.MustParseAddrPort("100.96.0.2:40000")
			dst := lan
			if fl == 2 {
				src, dst = netip.MustParseAddrPort("[fd7a:115c:a1e0::2]:40000"), lan6
			}
			src = netip.AddrPortFrom(src.Addr(), uint16(40000+fl))
			size := []int{1000, 1000, 1000, 400, 0, 1200}[int(op>>2)%6]
			flags := header.TCPFlagAck
			if op&0x20 != 0 {
				flags |= header.TCPFlagPsh
			}
			seq := next[fl]
			if op&0x40 != 0 {
				seq -= uint32(arg) * 10 // a retransmission or a gap
			}
			p := rawTCP(src, dst, seq, flags, size)
			if op&0x80 != 0 {
				header.TCP(p[len(p)-size-header.TCPMinimumSize:]).SetAckNumber(uint32(arg))
			}
			pkts = append(pkts, p)
			want[fl] = append(want[fl], sent{seq, size})
			next[fl] = seq + uint32(size)
		}
		var got [flows][]sent
		for _, p := range coalesce(pkts) {
			checkIPv4Checksum(t, p)
			d := parseDelivered(t, p)
			fl := int(d.Src.Port()) - 40000
			// Split what was delivered back into the segments it was
			// made of, by the sizes that were written.
			seq, left := d.Seq, d.Len
			for {
				k := len(got[fl])
				if k >= len(want[fl]) {
					t.Fatalf("flow %d: more delivered than written", fl)
				}
				w := want[fl][k]
				if w.seq != seq || w.size > left || (w.size == 0 && left != 0) {
					t.Fatalf("flow %d: delivered seq %d (%d bytes left of a packet), want segment %d: seq %d, %d bytes", fl, seq, left, k, w.seq, w.size)
				}
				got[fl] = append(got[fl], w)
				seq, left = seq+uint32(w.size), left-w.size
				if left == 0 {
					break
				}
			}
		}
		for fl := range flows {
			if len(got[fl]) != len(want[fl]) {
				t.Errorf("flow %d: %d segments delivered, %d written", fl, len(got[fl]), len(want[fl]))
			}
		}
	})
}
