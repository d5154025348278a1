package tunio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"testing"

	"golang.zx2c4.com/wireguard/tun"
)

// tso builds what the kernel hands a TUN device with TSO or USO on: the
// packet p whole (its payload many segments long) with the pseudo-header
// sum in its checksum field, behind a virtio-net header asking for
// segments of mss.
func tso(p pkt, mss int) []byte {
	b := p.bytes()
	ipLen := ipv4Len
	h := vnetHdr{flags: flagNeedsCsum, gsoType: gsoTCPv4, gsoSize: uint16(mss), csumOffset: tcpCsumOffset}
	if p.v6 {
		ipLen, h.gsoType = ipv6Len, gsoTCPv6
	}
	if p.proto == protoUDP {
		h.gsoType, h.csumOffset = gsoUDPL4, udpCsumOffset
	}
	h.csumStart = uint16(ipLen)
	h.hdrLen = uint16(ipLen + p.transportLen())
	binary.BigEndian.PutUint16(b[ipLen+int(h.csumOffset):], pseudoSum(b, p.v6, ipLen, p.proto, len(b)-ipLen))
	frame := make([]byte, vnetHdrLen+len(b))
	h.encode(frame)
	copy(frame[vnetHdrLen:], b)
	return frame
}

func TestReadSplitsOffloadRuns(t *testing.T) {
	const mss = 1000
	allFlags := uint8(tcpACK | tcpPSH | tcpFIN | tcpCWR)
	tcpRun := tcp4(40000, 5000, allFlags, fill(3*mss+10, 1))
	tcpRun.id = 0xfffe // wraps
	tests := []struct {
		name string
		p    pkt
	}{
		{"tcp4, flags spread, id wraps", tcpRun},
		{"tcp6", tcp6(40000, 5000, tcpACK, fill(2*mss, 2))},
		{"tcp4, one segment's worth", tcp4(40000, 5000, tcpACK|tcpPSH, fill(mss, 3))},
		{"udp4", udp4(5000, fill(2*mss+1, 4))},
		{"udp6", udp6(5000, fill(3*mss, 5))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame := tso(tt.p, mss)
			bufs, sizes := make([][]byte, 8), make([]int, 8)
			for i := range bufs {
				bufs[i] = make([]byte, room+maxPacket)
			}
			n, err := split(frame, bufs, sizes, room)
			if err != nil {
				t.Fatalf("split: %v", err)
			}
			segs := (len(tt.p.payload) + mss - 1) / mss
			if n != segs {
				t.Fatalf("split gave %d segments, want %d", n, segs)
			}
			for i := range n {
				seg := tt.p
				seg.payload = tt.p.payload[i*mss : min((i+1)*mss, len(tt.p.payload))]
				seg.id = tt.p.id + uint16(i)
				seg.seq = tt.p.seq + uint32(i*mss)
				if i < n-1 {
					seg.flags &^= tcpFIN | tcpPSH
				}
				if i > 0 {
					seg.flags &^= tcpCWR
				}
				want, got := seg.bytes(), bufs[i][room:room+sizes[i]]
				if !tt.p.v6 && !ipv4Valid(got[:ipv4Len]) {
					t.Errorf("segment %d: IPv4 header checksum wrong", i)
				}
				// The transport checksum is left as the kernel gave it.
				at := len(want) - len(seg.payload) - seg.transportLen() + csumOffset(seg.proto)
				if !bytes.Equal(got[at:at+2], frame[vnetHdrLen+at:vnetHdrLen+at+2]) {
					t.Errorf("segment %d: transport checksum %x, want it left as %x", i, got[at:at+2], frame[vnetHdrLen+at:vnetHdrLen+at+2])
				}
				copy(got[at:at+2], want[at:at+2])
				if !bytes.Equal(got, want) {
					t.Errorf("segment %d:\n got % x\nwant % x", i, got, want)
				}
			}
		})
	}
}

func TestReadSinglePackets(t *testing.T) {
	tcp := tcp4(40000, 1, tcpACK, fill(100, 0)).bytes()
	partial := withField(tcp, ipv4Len+tcpCsumOffset, 0x1234)
	// An ICMP echo whose checksum the kernel left to the device.
	icmp := pkt{proto: 1, src: src4, dst: dst4, ttl: 64, payload: fill(30, 1)}.bytes()
	icmp = withField(icmp, ipv4Len+2, 0)
	icmpDone := withField(icmp, ipv4Len+2, ^fold(sum(icmp[ipv4Len:], 0)))
	tests := []struct {
		name    string
		hdr     vnetHdr
		p, want []byte
	}{
		{"no offload", vnetHdr{}, tcp, tcp},
		{"tcp checksum left alone", vnetHdr{flags: flagNeedsCsum, csumStart: ipv4Len, csumOffset: tcpCsumOffset}, partial, partial},
		{"another checksum filled in", vnetHdr{flags: flagNeedsCsum, csumStart: ipv4Len, csumOffset: 2}, icmp, icmpDone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frame := make([]byte, vnetHdrLen+len(tt.p))
			tt.hdr.encode(frame)
			copy(frame[vnetHdrLen:], tt.p)
			bufs, sizes := [][]byte{make([]byte, 2048)}, []int{0}
			n, err := split(frame, bufs, sizes, room)
			if err != nil || n != 1 {
				t.Fatalf("split = %d, %v; want 1 packet", n, err)
			}
			if got := bufs[0][room : room+sizes[0]]; !bytes.Equal(got, tt.want) {
				t.Errorf("got  % x\nwant % x", got, tt.want)
			}
		})
	}
}

func TestReadDropsRunsOfMoreSegmentsThanBuffers(t *testing.T) {
	run := tso(tcp4(40000, 1, tcpACK, fill(3000, 0)), 1000)
	bufs, sizes := [][]byte{make([]byte, 2048), make([]byte, 2048)}, []int{0, 0}
	if n, err := split(run, bufs, sizes, room); !errors.Is(err, tun.ErrTooManySegments) {
		t.Errorf("split of 3 segments into 2 buffers = %d, %v; want an error wrapping %v", n, err, tun.ErrTooManySegments)
	}
}

func TestReadRefusesMalformedFrames(t *testing.T) {
	run := tso(tcp4(40000, 1, tcpACK, fill(3000, 0)), 1000)
	edit := func(f func(h *vnetHdr, p []byte)) []byte {
		b := slices.Clone(run)
		var h vnetHdr
		h.decode(b)
		f(&h, b[vnetHdrLen:])
		h.encode(b)
		return b
	}
	tests := []struct {
		name  string
		frame []byte
		bufs  int
	}{
		{"short", run[:vnetHdrLen], 8},
		{"gso size 0", edit(func(h *vnetHdr, _ []byte) { h.gsoSize = 0 }), 8},
		{"tcp6 gso on IPv4", edit(func(h *vnetHdr, _ []byte) { h.gsoType = gsoTCPv6 }), 8},
		{"unknown gso type", edit(func(h *vnetHdr, _ []byte) { h.gsoType = 3 }), 8},
		{"transport header past the IP header", edit(func(h *vnetHdr, _ []byte) { h.csumStart = 24 }), 8},
		{"tcp data offset too small", edit(func(_ *vnetHdr, p []byte) { p[ipv4Len+12] = 4 << 4 }), 8},
		{"tcp header past the end", edit(func(_ *vnetHdr, p []byte) { p[ipv4Len+12] = 15 << 4 })[:vnetHdrLen+ipv4Len+40], 8},
		{"checksum past the end", func() []byte {
			b := slices.Clone(run[:vnetHdrLen+30])
			h := vnetHdr{flags: flagNeedsCsum, csumStart: 20, csumOffset: 40}
			h.encode(b)
			return b
		}(), 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bufs, sizes := make([][]byte, tt.bufs), make([]int, tt.bufs)
			for i := range bufs {
				bufs[i] = make([]byte, room+maxPacket)
			}
			if n, err := split(tt.frame, bufs, sizes, room); !errors.Is(err, errMalformed) {
				t.Errorf("split = %d, %v; want an error wrapping %v", n, err, errMalformed)
			}
		})
	}
}

func withField(p []byte, at int, v uint16) []byte {
	b := slices.Clone(p)
	binary.BigEndian.PutUint16(b[at:], v)
	return b
}
