package tunio

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// recorder is a merger's write: it keeps each packet written, whole.
type recorder struct {
	frames [][]byte
	fail   error
}

func (r *recorder) write(iov [][]byte) error {
	r.frames = append(r.frames, bytes.Join(iov, nil))
	return r.fail
}

func TestWriteMergesRuns(t *testing.T) {
	const mss = 1000
	full := func(i int) []byte { return fill(mss, byte(i)) }
	// seqs gives the sequence number of the i-th full segment of a flow.
	seq := func(i int) uint32 { return 1000 + uint32(i*mss) }
	ack, ackPsh := uint8(tcpACK), uint8(tcpACK|tcpPSH)
	icmp := pkt{proto: 1, src: src4, dst: dst4, ttl: 64, payload: fill(56, 9)}
	fragment := udp4(5000, fill(100, 3))
	fragment.frag = 0x2000 // more fragments
	otherTTL := tcp4(40000, seq(1), ack, full(1))
	otherTTL.ttl = 63
	otherTS := tcp4(40000, seq(1), ack, full(1))
	otherTS.opts = tsOpt(2)
	syn := tcp4(40000, 999, 0x02, nil)

	tests := []struct {
		name   string
		udp    bool // the device takes UDP runs
		pkts   []pkt
		frames [][]int // the packets, by index, each written packet holds
	}{
		{"tcp4 run", false, []pkt{tcp4(40000, seq(0), ack, full(0)), tcp4(40000, seq(1), ack, full(1)), tcp4(40000, seq(2), ackPsh, full(2))}, [][]int{{0, 1, 2}}},
		{"tcp6 run", false, []pkt{tcp6(40000, seq(0), ack, full(0)), tcp6(40000, seq(1), ack, full(1))}, [][]int{{0, 1}}},
		{"psh ends a run", false, []pkt{tcp4(40000, seq(0), ack, full(0)), tcp4(40000, seq(1), ackPsh, full(1)), tcp4(40000, seq(2), ack, full(2)), tcp4(40000, seq(3), ack, full(3))}, [][]int{{0, 1}, {2, 3}}},
		{"a short segment ends a run", false, []pkt{tcp4(40000, seq(0), ack, full(0)), tcp4(40000, seq(1), ack, fill(10, 1)), tcp4(40000, seq(1)+10, ack, full(2))}, [][]int{{0, 1}, {2}}},
		{"a longer segment does not join", false, []pkt{tcp4(40000, seq(0), ack, fill(500, 0)), tcp4(40000, seq(0)+500, ack, full(1))}, [][]int{{0}, {1}}},
		{"a gap ends a run", false, []pkt{tcp4(40000, seq(0), ack, full(0)), tcp4(40000, seq(2), ack, full(2))}, [][]int{{0}, {1}}},
		{"another TTL ends a run", false, []pkt{tcp4(40000, seq(0), ack, full(0)), otherTTL}, [][]int{{0}, {1}}},
		{"other options end a run", false, []pkt{tcp4(40000, seq(0), ack, full(0)), otherTS}, [][]int{{0}, {1}}},
		{"flows interleaved", false, []pkt{tcp4(40000, seq(0), ack, full(0)), tcp4(40001, seq(0), ack, full(1)), tcp4(40000, seq(1), ack, full(2)), tcp4(40001, seq(1), ack, full(3))}, [][]int{{0, 2}, {1, 3}}},
		{"a control segment goes after its flow's run", false, []pkt{tcp4(40000, seq(0), ack, full(0)), tcp4(40000, seq(1), ack, full(1)), syn, tcp4(40000, seq(2), ack, full(2))}, [][]int{{0, 1}, {2}, {3}}},
		{"icmp as it is", false, []pkt{icmp}, [][]int{{0}}},
		{"a fragment as it is", true, []pkt{fragment}, [][]int{{0}}},
		{"udp4 run", true, []pkt{udp4(5000, fill(1200, 0)), udp4(5000, fill(1200, 1)), udp4(5000, fill(1200, 2)), udp4(5000, fill(700, 3)), udp4(5000, fill(1200, 4))}, [][]int{{0, 1, 2, 3}, {4}}},
		{"udp6 run", true, []pkt{udp6(5000, fill(1200, 0)), udp6(5000, fill(1200, 1))}, [][]int{{0, 1}}},
		{"udp without the offload", false, []pkt{udp4(5000, fill(1200, 0)), udp4(5000, fill(1200, 1))}, [][]int{{0}, {1}}},
		{"udp and tcp of the same ports apart", true, []pkt{udp4(40000, fill(1000, 0)), tcp4(40000, seq(0), ack, full(1)), udp4(40000, fill(1000, 2))}, [][]int{{0, 2}, {1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := make([][]byte, len(tt.pkts))
			for i, p := range tt.pkts {
				orig[i] = p.bytes()
			}
			var rec recorder
			m := merger{write: rec.write, udp: tt.udp}
			if err := m.writePackets(inBuffers(orig...), room); err != nil {
				t.Fatalf("writePackets: %v", err)
			}
			if len(rec.frames) != len(tt.frames) {
				t.Fatalf("wrote %d packets, want %d (%v)", len(rec.frames), len(tt.frames), tt.frames)
			}
			for i, g := range tt.frames {
				checkFrame(t, rec.frames[i], tt.pkts, orig, g)
			}
		})
	}
}

func TestWriteKeepsEveryFlowInOrderPastMaxRuns(t *testing.T) {
	// Two segments each of twice maxRuns flows, the flows' first segments
	// first: the oldest runs are written early, and no flow's segments
	// pass each other.
	var orig [][]byte
	n := 2 * maxRuns
	for s := range 2 {
		for f := range n {
			orig = append(orig, tcp4(uint16(30000+f), 1000+uint32(s*500), tcpACK, fill(500, byte(f))).bytes())
		}
	}
	var rec recorder
	m := merger{write: rec.write}
	if err := m.writePackets(inBuffers(orig...), room); err != nil {
		t.Fatalf("writePackets: %v", err)
	}
	seen := map[uint16]uint32{} // flow's source port -> next sequence number
	for _, f := range rec.frames {
		bufs, sizes := make([][]byte, 4), make([]int, 4)
		for i := range bufs {
			bufs[i] = make([]byte, maxPacket)
		}
		k, err := split(f, bufs, sizes, 0)
		if err != nil {
			t.Fatalf("split of a written packet: %v", err)
		}
		for _, b := range bufs[:k] {
			port, seqNo := uint16(b[20])<<8|uint16(b[21]), uint32(b[24])<<24|uint32(b[25])<<16|uint32(b[26])<<8|uint32(b[27])
			want, ok := seen[port]
			if !ok {
				want = 1000
			}
			if seqNo != want {
				t.Fatalf("flow %d: segment %d written before %d", port, seqNo, want)
			}
			seen[port] = seqNo + 500
		}
	}
	if len(seen) != n {
		t.Errorf("%d flows written, want %d", len(seen), n)
	}
	for port, next := range seen {
		if next != 2000 {
			t.Errorf("flow %d ended at %d, want 2000", port, next)
		}
	}
}

func TestWriteReturnsTheFirstErrorAndWritesTheRest(t *testing.T) {
	errDown := errors.New("device down")
	rec := recorder{fail: errDown}
	m := merger{write: rec.write}
	pkts := inBuffers(tcp4(1, 1, tcpACK, fill(10, 0)).bytes(), udp4(2, fill(10, 0)).bytes())
	if err := m.writePackets(pkts, room); !errors.Is(err, errDown) {
		t.Errorf("writePackets = %v, want %v", err, errDown)
	}
	if len(rec.frames) != 2 {
		t.Errorf("wrote %d packets after an error, want 2", len(rec.frames))
	}
}

// checkFrame checks a written packet: its virtio-net header, that the
// kernel's checksum completion gives a valid packet, and that splitting it
// as the kernel would gives back the packets of group g.
func checkFrame(t *testing.T, frame []byte, specs []pkt, orig [][]byte, g []int) {
	t.Helper()
	var h vnetHdr
	h.decode(frame)
	p := slices.Clone(frame[vnetHdrLen:])
	first := specs[g[0]]
	ipLen := ipv4Len
	if first.v6 {
		ipLen = ipv6Len
	}
	if first.proto != protoTCP && first.proto != protoUDP || first.frag&0x3fff != 0 {
		if h != (vnetHdr{}) || !bytes.Equal(p, orig[g[0]]) {
			t.Errorf("packet %v: header %+v, changed %v; want it as it was, no offload", g, h, !bytes.Equal(p, orig[g[0]]))
		}
		return
	}
	want := vnetHdr{flags: flagNeedsCsum, csumStart: uint16(ipLen), csumOffset: uint16(csumOffset(first.proto))}
	if len(g) > 1 {
		want.hdrLen = uint16(ipLen + first.transportLen())
		want.gsoSize = uint16(len(first.payload))
		want.gsoType = map[bool]uint8{false: gsoTCPv4, true: gsoTCPv6}[first.v6]
		if first.proto == protoUDP {
			want.gsoType = gsoUDPL4
		}
	}
	if h != want {
		t.Errorf("packets %v: virtio-net header %+v, want %+v", g, h, want)
	}
	if !first.v6 && !ipv4Valid(p[:ipv4Len]) {
		t.Errorf("packets %v: IPv4 header checksum wrong", g)
	}
	// What the kernel does with a packet it is to checksum.
	if err := fillChecksum(p, h); err != nil {
		t.Fatalf("packets %v: %v", g, err)
	}
	if !transportValid(p, first.v6, ipLen, first.proto) {
		t.Errorf("packets %v: checksum completed as the kernel would is wrong", g)
	}
	merged := first
	merged.payload = nil
	for _, k := range g {
		merged.payload = append(merged.payload, specs[k].payload...)
		merged.flags |= specs[k].flags
	}
	if diff := cmp.Diff(normal(merged.bytes(), first.v6, first.proto), normal(p, first.v6, first.proto)); diff != "" {
		t.Errorf("packets %v: the merged packet (-want +got):\n%s", g, diff)
	}
	bufs, sizes := make([][]byte, len(g)), make([]int, len(g))
	for i := range bufs {
		bufs[i] = make([]byte, maxPacket)
	}
	n, err := split(frame, bufs, sizes, 0)
	if err != nil || n != len(g) {
		t.Fatalf("packets %v: split gave %d, %v; want %d", g, n, err, len(g))
	}
	for i, k := range g {
		got, want := normal(bufs[i][:sizes[i]], first.v6, first.proto), normal(orig[k], first.v6, first.proto)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("packets %v: segment %d split back (-want +got):\n%s", g, i, diff)
		}
	}
}

// normal is b with the fields a split may set otherwise zeroed: the
// transport checksum, and IPv4's ID and header checksum.
func normal(b []byte, v6 bool, proto uint8) string {
	b = slices.Clone(b)
	ipLen := ipv6Len
	if !v6 {
		ipLen = ipv4Len
		b[4], b[5], b[10], b[11] = 0, 0, 0, 0
	}
	at := ipLen + csumOffset(proto)
	b[at], b[at+1] = 0, 0
	return fmt.Sprintf("% x", b)
}
