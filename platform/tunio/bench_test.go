package tunio

import "testing"

// The mss of a tunnel with Warren's default MTU of 1280, less IPv4 and TCP
// headers with timestamps: what a TSO run is split into, and what a run
// written to the device is merged from.
const benchMSS = 1280 - 20 - 32

// BenchmarkSplit splits a 64 KB TSO run from the kernel into segments.
func BenchmarkSplit(b *testing.B) {
	frame := tso(tcp4(40000, 1, tcpACK|tcpPSH, fill(53*benchMSS, 0)), benchMSS)
	bufs, sizes := make([][]byte, 64), make([]int, 64)
	for i := range bufs {
		bufs[i] = make([]byte, room+2048)
	}
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if _, err := split(frame, bufs, sizes, room); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWrite merges a Write of 53 consecutive segments into one run.
func BenchmarkWrite(b *testing.B) {
	var pkts [][]byte
	for i := range 53 {
		pkts = append(pkts, tcp4(40000, uint32(1+i*benchMSS), tcpACK, fill(benchMSS, byte(i))).bytes())
	}
	bufs := inBuffers(pkts...)
	first := pkts[0][:ipv4Len+tcpLen+12] // the headers a merge rewrites
	writes, pieces := 0, 0
	m := merger{write: func(iov [][]byte) error { writes++; pieces += len(iov); return nil }}
	b.SetBytes(int64(53 * benchMSS))
	for b.Loop() {
		copy(bufs[0][room:], first)
		if err := m.writePackets(bufs, room); err != nil {
			b.Fatal(err)
		}
	}
	if writes != b.N || pieces != 53*b.N {
		b.Fatalf("%d writes of %d pieces in %d Writes, want one of 53 each", writes, pieces, b.N)
	}
}
