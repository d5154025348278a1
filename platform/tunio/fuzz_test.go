package tunio

import (
	"bytes"
	"testing"
)

// FuzzSplit feeds split arbitrary frames, as a kernel bug or a hostile
// local process holding the device could: it must not panic, and what it
// gives must fit the buffers.
func FuzzSplit(f *testing.F) {
	f.Add(tso(tcp4(40000, 1, tcpACK|tcpPSH, fill(3000, 0)), 1000))
	f.Add(tso(tcp6(40000, 1, tcpACK, fill(2500, 1)), 1200))
	f.Add(tso(udp4(5000, fill(2000, 2)), 1000))
	f.Add(append(make([]byte, vnetHdrLen), udp6(5000, fill(10, 3)).bytes()...))
	f.Fuzz(func(t *testing.T, frame []byte) {
		bufs, sizes := make([][]byte, 4), make([]int, 4)
		for i := range bufs {
			bufs[i] = make([]byte, room+2048)
		}
		n, err := split(frame, bufs, sizes, room)
		if err != nil {
			return
		}
		if n < 1 || n > len(bufs) {
			t.Fatalf("split gave %d packets for %d buffers", n, len(bufs))
		}
		for i := range n {
			if sizes[i] > len(bufs[i])-room {
				t.Fatalf("packet %d: %d bytes in a buffer of %d", i, sizes[i], len(bufs[i])-room)
			}
		}
	})
}

// FuzzWrite feeds the merger arbitrary packets, cut from one input: it must
// not panic, and every packet it writes must split back, the packets
// together giving as many as went in.
func FuzzWrite(f *testing.F) {
	seed := func(ps ...pkt) []byte {
		var b []byte
		for _, p := range ps {
			raw := p.bytes()
			b = append(b, byte(len(raw)>>8), byte(len(raw)))
			b = append(b, raw...)
		}
		return b
	}
	f.Add(seed(tcp4(1, 1, tcpACK, fill(100, 0)), tcp4(1, 101, tcpACK, fill(100, 1)), udp4(2, fill(50, 2))), true)
	f.Add(seed(tcp6(1, 1, tcpACK, fill(100, 0)), tcp6(1, 101, tcpACK|tcpPSH, fill(10, 1)), udp6(2, fill(50, 2)), udp6(2, fill(50, 2))), true)
	f.Add(seed(udp4(2, fill(50, 2)), udp4(2, fill(50, 2))), false)
	f.Fuzz(func(t *testing.T, in []byte, udp bool) {
		var pkts [][]byte
		for len(in) >= 2 {
			n := min(int(in[0])<<8|int(in[1]), len(in)-2)
			pkts = append(pkts, in[2:2+n])
			in = in[2+n:]
		}
		if len(pkts) == 0 || len(pkts) > 32 {
			return
		}
		var rec recorder
		m := merger{write: rec.write, udp: udp}
		if err := m.writePackets(inBuffers(pkts...), room); err != nil {
			t.Fatalf("writePackets: %v", err)
		}
		// A segment split back is no longer than the packet it came from.
		longest := 0
		for _, p := range pkts {
			longest = max(longest, len(p))
		}
		bufs, sizes := make([][]byte, len(pkts)), make([]int, len(pkts))
		for i := range bufs {
			bufs[i] = make([]byte, longest)
		}
		got := 0
		for _, fr := range rec.frames {
			if bytes.Equal(fr[:vnetHdrLen], make([]byte, vnetHdrLen)) && len(fr) == vnetHdrLen {
				got++ // an empty packet, written as it came
				continue
			}
			n, err := split(fr, bufs, sizes, 0)
			if err != nil {
				t.Fatalf("a written packet does not split back: %v\n% x", err, fr)
			}
			got += n
		}
		if got != len(pkts) {
			t.Fatalf("%d packets in, %d written", len(pkts), got)
		}
	})
}
