package netstack

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"
)

// BenchmarkTCPThroughput moves b.N chunks through one proxied flow, in
// each direction: "download" has gVisor sending toward the tunnel (the
// direction perf-anchors §2.3 found weak), "upload" has it receiving.
// The client stack's own cost is included, so compare runs with each
// other, not with a real tunnel.
//
// Besides MB/s it reports, per op (one chunk): cpu-ns/op, the CPU time
// of the whole process (both stacks, the proxy, the sink), steadier than
// MB/s on a shared machine; retrans/op, what both TCP senders
// retransmitted; drops/op, what the Stack's gVisor dropped (full segment
// queues and the like); and hdrops/op, what the harness dropped (the
// client stack, and its link queue toward the Stack). The goal is zero
// drops and zero retransmits.
func BenchmarkTCPThroughput(b *testing.B) {
	const chunk = 64 << 10
	for _, dir := range []string{"download", "upload"} {
		b.Run(dir, func(b *testing.B) {
			srvConns := make(chan net.Conn, 1)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			go func() {
				c, err := ln.Accept()
				if err == nil {
					srvConns <- c
				}
			}()
			dst := netip.MustParseAddrPort("192.0.2.100:5201")
			p := newPair(b, Config{
				Handler: &dialHandler{targets: map[netip.AddrPort]string{dst: ln.Addr().String()}},
				Logger:  slog.New(slog.DiscardHandler),
			})
			c, err := p.dialTCP(context.Background(), dst)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			srv := <-srvConns
			defer srv.Close()
			var src io.Writer = srv
			var sink io.Reader = c
			if dir == "upload" {
				src, sink = c, srv
			}
			buf := make([]byte, chunk)
			b.SetBytes(chunk)
			before := p.lossStats()
			cpu0, cpuOK := processCPU()
			b.ResetTimer()
			done := make(chan error, 1)
			go func() {
				_, err := io.CopyN(io.Discard, sink, int64(b.N)*chunk)
				done <- err
			}()
			for range b.N {
				if _, err := src.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if cpu1, ok := processCPU(); ok && cpuOK {
				b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
			}
			d := p.lossStats().sub(before)

			b.ReportMetric(float64(d.retrans)/float64(b.N), "retrans/op")
			b.ReportMetric(float64(d.drops)/float64(b.N), "drops/op")
			b.ReportMetric(float64(d.harnessDrops)/float64(b.N), "hdrops/op")
		})
	}
}

// lossStats are a pair's loss counters at one moment.
type lossStats struct {
	retrans      uint64 // TCP retransmissions, both stacks
	drops        uint64 // packets the Stack's gVisor dropped
	harnessDrops uint64 // packets the client stack or its link dropped
}

func (p *pair) lossStats() lossStats {
	s, c := p.stack.Stats(), p.client.Stats()
	return lossStats{
		retrans:      s.TCPRetransmits + c.TCP.Retransmits.Value(),
		drops:        s.GVisorDropped,
		harnessDrops: c.DroppedPackets.Value() + c.NICs.TxPacketsDroppedNoBufferSpace.Value(),
	}
}

func (a lossStats) sub(b lossStats) lossStats {
	return lossStats{a.retrans - b.retrans, a.drops - b.drops, a.harnessDrops - b.harnessDrops}
}
