package dataplane

import (
	"net"
	"testing"
	"time"

	socks5 "github.com/things-go/go-socks5"
)

// TestUserspaceClients runs the userspace benchmark's client modes on
// loopback, directly and through a SOCKS5 proxy (go-socks5's own server),
// against its bulk server and the echo server. It needs no root.
func TestUserspaceClients(t *testing.T) {
	listen := func() net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		return ln
	}
	bulk := listen()
	go func() {
		for {
			c, err := bulk.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64<<10)
				for {
					if _, err := c.Write(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	echoLn := listen()
	go func() {
		for {
			c, err := echoLn.Accept()
			if err != nil {
				return
			}
			go echo(c)
		}
	}()
	proxyLn := listen()
	go socks5.NewServer().Serve(proxyLn)

	for _, socks := range []string{"", proxyLn.Addr().String()} {
		d, err := bulkDownload(bulk.Addr().String(), socks, 200*time.Millisecond)
		if err != nil {
			t.Fatalf("download (socks %q): %v", socks, err)
		}
		if d.Bytes <= 0 || d.AllBytes <= d.Bytes || d.Seconds < 0.2 || d.GbitPerSecond <= 0 {
			t.Errorf("download (socks %q): %+v; want bytes after a warm-up second, over at least 0.2 s", socks, d)
		}
		s := ttfbSamples(echoLn.Addr().String(), socks, 5, 2)
		if len(s.Samples) != 5 || s.Failures != 0 {
			t.Errorf("ttfb (socks %q): %+v; want 5 samples, no failure", socks, s)
		}
	}
	// A proxy that is not there: every sample fails.
	dead := listen()
	dead.Close()
	if s := ttfbSamples(echoLn.Addr().String(), dead.Addr().String(), 2, 0); len(s.Samples) != 0 || s.Failures != 2 || s.FirstError == "" {
		t.Errorf("ttfb through no proxy: %+v; want 2 failures", s)
	}
}

// TestUserspaceSummary checks the medians, the median of the runs'
// ratios and the verdict.
func TestUserspaceSummary(t *testing.T) {
	dl := func(g float64) *usDownload {
		return &usDownload{downloadOut: downloadOut{GbitPerSecond: g, AllBytes: 1e9}}
	}
	r := &usReport{Runs: []usRun{
		{Download: map[string]*usDownload{"tun": dl(2), "userspace": dl(1.6)}, Ratio: ptr(0.8), TTFB: map[string]*latency{"tun": {P50us: 400}, "userspace": {P50us: 600}}},
		{Download: map[string]*usDownload{"tun": dl(2.4), "userspace": dl(1.2)}, Ratio: ptr(0.5)},
		{Download: map[string]*usDownload{"tun": dl(2), "userspace": dl(1.5)}, Ratio: ptr(0.75)},
	}}
	r.summarize()
	f := r.Figures[0]
	if f.Key != "download_gbps" || *f.TUN != 2 || *f.Userspace != 1.5 || *f.Ratio != 0.75 || f.Verdict != "meets goal" {
		t.Errorf("download row: %+v (tun %v, userspace %v, ratio %v); want 2, 1.5, 0.75×, meets goal", f, *f.TUN, *f.Userspace, *f.Ratio)
	}
	if p := r.Figures[2]; p.Key != "ttfb_p50_us" || *p.Ratio != 1.5 {
		t.Errorf("ttfb p50 row: %+v; want ratio 1.5", p)
	}
	r.Runs[2].Ratio = ptr(0.6)
	r.Figures = nil
	r.summarize()
	if f := r.Figures[0]; f.Verdict != "misses goal" {
		t.Errorf("median ratio %v: verdict %q, want misses goal", *f.Ratio, f.Verdict)
	}
}
