package netstack

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"
)

// BenchmarkTCPThroughput moves b.N bytes through one proxied flow, in
// each direction: "download" has gVisor sending toward the tunnel (the
// direction perf-anchors §2.3 found weak), "upload" has it receiving.
// The client stack's own cost is included, so compare runs with each
// other, not with a real tunnel.
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
		})
	}
}
