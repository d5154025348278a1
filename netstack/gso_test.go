package netstack

import (
	"bytes"
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// gsoPacket builds a TCP packet as gVisor hands an offloading link: one
// IP packet with the whole payload and a partial (pseudo-header only)
// TCP checksum.
func gsoPacket(src, dst netip.AddrPort, seq uint32, flags header.TCPFlags, payload []byte, mss uint16) *stack.PacketBuffer {
	const tcpLen = header.TCPMinimumSize
	s, d := tcpip.AddrFromSlice(src.Addr().AsSlice()), tcpip.AddrFromSlice(dst.Addr().AsSlice())
	var b []byte
	var ipLen int
	gso := stack.GSO{NeedsCsum: true, CsumOffset: header.TCPChecksumOffset, MSS: mss, MaxSize: gsoMaxSize}
	if src.Addr().Is4() {
		ipLen = header.IPv4MinimumSize
		b = make([]byte, ipLen+tcpLen+len(payload))
		ip := header.IPv4(b)
		ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(b)), ID: 1000, TTL: 64, Protocol: uint8(header.TCPProtocolNumber), SrcAddr: s, DstAddr: d})
		ip.SetChecksum(^ip.CalculateChecksum())
		gso.Type, gso.L3HdrLen = stack.GSOTCPv4, header.IPv4MinimumSize
	} else {
		ipLen = header.IPv6MinimumSize
		b = make([]byte, ipLen+tcpLen+len(payload))
		header.IPv6(b).Encode(&header.IPv6Fields{PayloadLength: uint16(tcpLen + len(payload)), TransportProtocol: header.TCPProtocolNumber, HopLimit: 64, SrcAddr: s, DstAddr: d})
		gso.Type, gso.L3HdrLen = stack.GSOTCPv6, header.IPv6MinimumSize
	}
	th := header.TCP(b[ipLen:])
	th.Encode(&header.TCPFields{SrcPort: src.Port(), DstPort: dst.Port(), SeqNum: seq, AckNum: 7, DataOffset: tcpLen, Flags: flags, WindowSize: 1000})
	th.SetChecksum(header.PseudoHeaderChecksum(header.TCPProtocolNumber, s, d, uint16(tcpLen+len(payload))))
	copy(b[ipLen+tcpLen:], payload)
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: buffer.MakeWithData(b)})
	pkt.GSOOptions = gso
	return pkt
}

// inViews returns pkt rebuilt from one view per piece between the cuts
// (offsets into the packet), releasing pkt; no cuts returns pkt itself.
func inViews(pkt *stack.PacketBuffer, cuts []int) *stack.PacketBuffer {
	if len(cuts) == 0 {
		return pkt
	}
	defer pkt.DecRef()
	var b []byte
	for _, v := range pkt.AsSlices() {
		b = append(b, v...)
	}
	var out buffer.Buffer
	prev := 0
	for _, c := range append(cuts, len(b)) {
		piece := buffer.MakeWithData(b[prev:c])
		out.Merge(&piece)
		prev = c
	}
	split := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: out})
	split.GSOOptions = pkt.GSOOptions
	return split
}

// segment is what a test needs from one TCP segment.
type segment struct {
	seq     uint32
	flags   header.TCPFlags
	payload []byte
	ipID    uint16
}

// parseSegment parses a TCP segment and checks its lengths and checksums.
func parseSegment(t *testing.T, pkt []byte) segment {
	t.Helper()
	var th header.TCP
	var src, dst tcpip.Address
	var id uint16
	if pkt[0]>>4 == 4 {
		ip := header.IPv4(pkt)
		if int(ip.TotalLength()) != len(pkt) || !ip.IsChecksumValid() {
			t.Errorf("bad ipv4 header: % x", pkt[:20])
		}
		th, src, dst, id = header.TCP(ip.Payload()), ip.SourceAddress(), ip.DestinationAddress(), ip.ID()
	} else {
		ip := header.IPv6(pkt)
		if int(ip.PayloadLength())+header.IPv6MinimumSize != len(pkt) {
			t.Errorf("bad ipv6 payload length %d for %d bytes", ip.PayloadLength(), len(pkt))
		}
		th, src, dst = header.TCP(ip.Payload()), ip.SourceAddress(), ip.DestinationAddress()
	}
	xsum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, src, dst, uint16(len(th)))
	if checksum.Checksum(th, xsum) != 0xffff {
		t.Errorf("bad tcp checksum in segment seq %d", th.SequenceNumber())
	}
	return segment{seq: th.SequenceNumber(), flags: th.Flags(), payload: bytes.Clone(th.Payload()), ipID: id}
}

func TestReadSegmentsOffloadPackets(t *testing.T) {
	for _, tc := range []struct {
		name     string
		src, dst netip.AddrPort
		batch    int   // Read batch size: smaller than the segment count splits across Reads
		cuts     []int // where the packet is split into views (see inViews)
	}{
		{"ipv4", netip.MustParseAddrPort("192.0.2.1:80"), netip.AddrPortFrom(clientV4, 5000), batchSize, nil},
		{"ipv4 small batches", netip.MustParseAddrPort("192.0.2.1:80"), netip.AddrPortFrom(clientV4, 5000), 3, nil},
		{"ipv6", netip.MustParseAddrPort("[2001:db8::1]:80"), netip.AddrPortFrom(clientV6, 5000), batchSize, nil},
		// Headers split, and payload views of odd sizes that end inside
		// segments and one byte long.
		{"ipv4 in views", netip.MustParseAddrPort("192.0.2.1:80"), netip.AddrPortFrom(clientV4, 5000), 3, []int{10, 40 + 333, 40 + 334, 40 + 1043}},
		{"ipv6 in views", netip.MustParseAddrPort("[2001:db8::1]:80"), netip.AddrPortFrom(clientV6, 5000), batchSize, []int{60, 60 + 1, 60 + 700}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			s := newStack(t, Config{Handler: &funcs{}})
			const mss = 100
			payload := make([]byte, 1050) // 10 full segments and a short one
			for i := range payload {
				payload[i] = byte(i)
			}
			flags := header.TCPFlagAck | header.TCPFlagPsh | header.TCPFlagFin | header.TCPFlagCwr
			pkt := inViews(gsoPacket(tc.src, tc.dst, 5000, flags, payload, mss), tc.cuts)
			s.link.enqueue(pkt, true)
			pkt.DecRef()
			// A plain packet queued behind it comes out after the segments.
			ping := echoPacket(clientV4, nodeV4, false, 1, 1, nil)
			s.Write([][]byte{ping}, 0)

			bufs := make([][]byte, tc.batch)
			for i := range bufs {
				bufs[i] = make([]byte, wgOffset+1280)
			}
			sizes := make([]int, tc.batch)
			var segs []segment
			for len(segs) < 11 {
				n, err := s.Read(bufs, sizes, wgOffset)
				if err != nil {
					t.Fatal(err)
				}
				if n > tc.batch {
					t.Fatalf("Read returned %d packets for %d buffers", n, tc.batch)
				}
				for i := range n {
					pkt := bufs[i][wgOffset : wgOffset+sizes[i]]
					if len(segs) == 11 {
						if _, ok := parseEchoReply(t, pkt); !ok {
							t.Errorf("packet after the segments is not the echo reply")
						}
						continue
					}
					segs = append(segs, parseSegment(t, pkt))
				}
			}
			var got []byte
			for i, sg := range segs {
				if want := uint32(5000 + i*mss); sg.seq != want {
					t.Errorf("segment %d: seq %d, want %d", i, sg.seq, want)
				}
				last := i == len(segs)-1
				if sg.flags.Contains(header.TCPFlagFin) != last || sg.flags.Contains(header.TCPFlagPsh) != last {
					t.Errorf("segment %d: flags %v, FIN and PSH only on the last", i, sg.flags)
				}
				if sg.flags.Contains(header.TCPFlagCwr) != (i == 0) {
					t.Errorf("segment %d: flags %v, CWR only on the first", i, sg.flags)
				}
				if !sg.flags.Contains(header.TCPFlagAck) {
					t.Errorf("segment %d: lost ACK", i)
				}
				if tc.src.Addr().Is4() && sg.ipID != uint16(1000+i) {
					t.Errorf("segment %d: ip id %d, want %d", i, sg.ipID, 1000+i)
				}
				got = append(got, sg.payload...)
			}
			if !bytes.Equal(got, payload) {
				t.Errorf("reassembled payload differs")
			}
			if st := s.Stats(); st.Segmented != 1 {
				t.Errorf("Segmented = %d, want 1", st.Segmented)
			}
		})
	}
}

func TestReadOffloadPacketWithoutPayload(t *testing.T) {
	checkLeaks(t)
	s := newStack(t, Config{Handler: &funcs{}})
	pkt := gsoPacket(netip.MustParseAddrPort("192.0.2.1:80"), netip.AddrPortFrom(clientV4, 5000), 1, header.TCPFlagAck, nil, 1240)
	s.link.enqueue(pkt, true)
	pkt.DecRef()
	bufs := [][]byte{make([]byte, 1280)}
	sizes := make([]int, 1)
	n, err := s.Read(bufs, sizes, 0)
	if n != 1 || err != nil {
		t.Fatalf("Read = %d, %v", n, err)
	}
	if sg := parseSegment(t, bufs[0][:sizes[0]]); len(sg.payload) != 0 || sg.flags != header.TCPFlagAck {
		t.Errorf("segment = %+v, want a bare ACK", sg)
	}
}

// BenchmarkSegmenter splits a 64 KB offload packet into 1,228-byte
// segments, cycling through 128 read buffers as wireguard-go's batch does.
func BenchmarkSegmenter(b *testing.B) {
	payload := make([]byte, 64000-header.IPv4MinimumSize-header.TCPMinimumSize)
	pkt := gsoPacket(netip.MustParseAddrPort("192.0.2.1:80"), netip.AddrPortFrom(clientV4, 5000), 1, header.TCPFlagAck, payload, 1228)
	defer pkt.DecRef()
	bufs := make([][]byte, 128)
	for i := range bufs {
		bufs[i] = make([]byte, 1<<16)
	}
	var g segmenter
	b.SetBytes(int64(len(payload)))
	k := 0
	for b.Loop() {
		if !g.load(pkt) {
			b.Fatal("load refused the packet")
		}
		for g.pending {
			if _, ok := g.next(bufs[k%len(bufs)], wgOffset); !ok {
				b.Fatal("a segment did not fit")
			}
			k++
		}
	}
}
