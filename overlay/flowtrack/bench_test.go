package flowtrack

import (
	"os"
	"sync/atomic"
	"testing"

	"golang.zx2c4.com/wireguard/tun"
)

// nopTUN hands out the same batch on every Read and discards writes: the
// benchmarks measure the filter alone.
type nopTUN struct {
	batch [][]byte
}

func (n *nopTUN) File() *os.File           { return nil }
func (n *nopTUN) MTU() (int, error)        { return 1280, nil }
func (n *nopTUN) Name() (string, error)    { return "nop0", nil }
func (n *nopTUN) Events() <-chan tun.Event { return nil }
func (n *nopTUN) Close() error             { return nil }
func (n *nopTUN) BatchSize() int           { return 128 }

func (n *nopTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	for i, p := range n.batch {
		sizes[i] = copy(bufs[i][offset:offset+60], p[:min(60, len(p))]) + len(p) - min(60, len(p))
	}
	return len(n.batch), nil
}

func (n *nopTUN) Write(bufs [][]byte, offset int) (int, error) { return len(bufs), nil }

const benchBatch = 64

// benchDevice returns a Device holding 1,000 other flows and the flows of
// the batch it reads.
func benchDevice(b *testing.B, out [][]byte) *Device {
	d := New(&nopTUN{}, Config{})
	for i := range 1000 {
		k := parsed(udp(ap(laptop4, uint16(20000+i)), ap(lan4, 53))).key
		d.flows.touch(&k, 0, false)
	}
	for _, p := range out {
		k := parsed(p).key
		d.flows.touch(&k, d.clock(), false)
	}
	return d
}

func inBufs(pkts [][]byte) [][]byte {
	bufs := make([][]byte, len(pkts))
	for i, p := range pkts {
		bufs[i] = append(make([]byte, wgOffset), p...)
	}
	return bufs
}

func benchWrite(b *testing.B, out, in [][]byte) {
	d := benchDevice(b, out)
	bufs := inBufs(in)
	b.ReportAllocs()
	b.SetBytes(int64(len(in) * 1400))
	b.ResetTimer()
	for b.Loop() {
		if _, err := d.Write(bufs, wgOffset); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(in)), "ns/packet")
	if d.Stats().Dropped != 0 {
		b.Fatal("the benchmark's packets were dropped")
	}
}

// BenchmarkWriteOneFlow: a download, the common case at speed.
func BenchmarkWriteOneFlow(b *testing.B) {
	out := [][]byte{tcp(ap(laptop4, 40000), ap(lan4, 443), ack)}
	in := make([][]byte, benchBatch)
	for i := range in {
		in[i] = ipPacket(lan4, laptop4, protoTCP, append(tcpSeg(443, 40000, ack), make([]byte, 1380)...))
	}
	benchWrite(b, out, in)
}

// BenchmarkWriteManyFlows: every packet of the batch from another flow,
// the worst case.
func BenchmarkWriteManyFlows(b *testing.B) {
	out := make([][]byte, benchBatch)
	in := make([][]byte, benchBatch)
	for i := range in {
		out[i] = tcp(ap(laptop4, uint16(40000+i)), ap(lan4, 443), ack)
		in[i] = ipPacket(lan4, laptop4, protoTCP, append(tcpSeg(443, uint16(40000+i), ack), make([]byte, 1380)...))
	}
	benchWrite(b, out, in)
}

// BenchmarkWriteOneFlowIPv6 is BenchmarkWriteOneFlow over IPv6.
func BenchmarkWriteOneFlowIPv6(b *testing.B) {
	out := [][]byte{tcp(ap(laptop6, 40000), ap(lan6, 443), ack)}
	in := make([][]byte, benchBatch)
	for i := range in {
		in[i] = ipPacket(lan6, laptop6, protoTCP, append(tcpSeg(443, 40000, ack), make([]byte, 1360)...))
	}
	benchWrite(b, out, in)
}

// BenchmarkWriteParallel: four connectors' goroutines writing at once.
func BenchmarkWriteParallel(b *testing.B) {
	out := make([][]byte, 4)
	for i := range out {
		out[i] = tcp(ap(laptop4, uint16(40000+i)), ap(lan4, 443), ack)
	}
	d := benchDevice(b, out)
	b.ReportAllocs()
	b.SetBytes(benchBatch * 1400)
	var next atomicCounter
	b.RunParallel(func(pb *testing.PB) {
		i := next.add()
		in := make([][]byte, benchBatch)
		for j := range in {
			in[j] = ipPacket(lan4, laptop4, protoTCP, append(tcpSeg(443, uint16(40000+i%4), ack), make([]byte, 1380)...))
		}
		bufs := inBufs(in)
		for pb.Next() {
			d.Write(bufs, wgOffset)
		}
	})
}

// BenchmarkReadOneFlow: an upload, the laptop's side of a fast flow.
func BenchmarkReadOneFlow(b *testing.B) {
	batch := make([][]byte, benchBatch)
	for i := range batch {
		batch[i] = ipPacket(laptop4, lan4, protoTCP, append(tcpSeg(40000, 443, ack), make([]byte, 1380)...))
	}
	d := benchDevice(b, nil)
	d.Device = &nopTUN{batch: batch}
	bufs := make([][]byte, benchBatch)
	for i := range bufs {
		bufs[i] = make([]byte, wgOffset+1500)
	}
	sizes := make([]int, benchBatch)
	b.ReportAllocs()
	b.SetBytes(benchBatch * 1400)
	b.ResetTimer()
	for b.Loop() {
		if _, err := d.Read(bufs, sizes, wgOffset); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchBatch), "ns/packet")
}

type atomicCounter struct{ n atomic.Int64 }

func (c *atomicCounter) add() int { return int(c.n.Add(1)) }
