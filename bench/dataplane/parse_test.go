package dataplane

import (
	"bytes"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The tests below are the benchmark's pure parts; they run in `make test`
// without root. The benchmark itself runs only under -bench.

func TestParseIperf(t *testing.T) {
	b, err := os.ReadFile("testdata/iperf3-reverse-p2.json") // iperf3 3.12 -J -R -P 2 -t 2 -O 1 over a veth
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseIperf(b)
	if err != nil {
		t.Fatal(err)
	}
	want := iperfResult{
		SentBitsPerSecond:     21566827405.2233,
		ReceivedBitsPerSecond: 21562669882.708477,
		SentBytes:             5387059200,
		ReceivedBytes:         5390597392,
		Retransmits:           39130,
		AllBytes:              8007712016,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parseIperf (-want +got):\n%s", diff)
	}
}

func TestParseIperfError(t *testing.T) {
	_, err := parseIperf([]byte(`{"start":{},"intervals":[],"end":{},"error":"unable to connect to server: Connection refused"}`))
	if err == nil || !strings.Contains(err.Error(), "Connection refused") {
		t.Errorf("got %v, want iperf3's error", err)
	}
	if _, err := parseIperf([]byte("not json")); err == nil {
		t.Error("parsing garbage: got no error")
	}
}

func TestParseCounters(t *testing.T) {
	b, err := os.ReadFile("testdata/proc-net.txt") // /proc/net/snmp and /proc/net/netstat, one after the other
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseCounters(string(b))
	if err != nil {
		t.Fatal(err)
	}
	want := netCounters{InSegs: 177272, OutSegs: 123523, RetransSegs: 0, OFOQueue: 2731}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if _, err := parseCounters("Ip: Forwarding\nIp: 1\n"); err == nil {
		t.Error("no Tcp lines: got no error")
	}
	a := netCounters{InSegs: 10, OutSegs: 20, RetransSegs: 3, OFOQueue: 4, UDPRcvbufErrors: 5, TunTxDropped: 7}
	b2 := netCounters{InSegs: 1, OutSegs: 2, RetransSegs: 3, UDPRcvbufErrors: 1, TunTxDropped: 2}
	if d := a.sub(b2); d != (netCounters{InSegs: 9, OutSegs: 18, OFOQueue: 4, UDPRcvbufErrors: 4, TunTxDropped: 5}) {
		t.Errorf("sub: got %+v", d)
	}
}

func TestParseStatCPU(t *testing.T) {
	// A comm with spaces and a parenthesis, as a process may have.
	stat := "4242 (my (odd) proc) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 12 0 100 0 0"
	got, err := parseStatCPU(stat)
	if err != nil {
		t.Fatal(err)
	}
	if want := 3.25; got != want {
		t.Errorf("got %v CPU-s, want %v", got, want)
	}
	if _, err := parseStatCPU("4242 (x) S 1"); err == nil {
		t.Error("short stat: got no error")
	}
}

func TestParseStatusMemory(t *testing.T) {
	got, err := parseStatusMemory("Name:\twarren\nVmPeak:\t  999 kB\nVmHWM:\t  200000 kB\nVmRSS:\t  100000 kB\n")
	if err != nil {
		t.Fatal(err)
	}
	want := memory{RSSMB: 102.4, PeakMB: 204.8}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, err := parseStatusMemory("Name:\tx\n"); err == nil {
		t.Error("no VmRSS: got no error")
	}
}

func TestStatistics(t *testing.T) {
	for _, tt := range []struct {
		in     []float64
		median float64
	}{{[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got := median(tt.in); got != tt.median {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.median)
		}
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median of nothing is not NaN")
	}
	var s samplesOut
	for i := 1; i <= 100; i++ {
		s.Samples = append(s.Samples, int64(i)*1000) // 1..100 µs
	}
	got := summarize(s)
	want := latency{N: 100, P50us: 50, P90us: 90, P99us: 99, MaxUs: 100, MeanUs: 50.5}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("summarize (-want +got):\n%s", diff)
	}
}

// TestSummarize checks the medians, the same-run ratios and the verdicts
// of a report, and that its table prints every figure.
func TestSummarize(t *testing.T) {
	x := func(gbps float64) *transfer { return &transfer{GbitPerSecond: gbps} }
	r := &report{Config: config{Streams: 8}}
	for _, v := range []struct{ wg, w float64 }{{4, 1}, {2, 1.5}, {3, 2.4}} {
		r.Runs = append(r.Runs, runResult{
			Veth:   pathResult{Upload: x(20)},
			WGGo:   pathResult{Upload: x(v.wg), Download: x(v.wg)},
			Warren: pathResult{Upload: x(v.w), Connect: &latency{N: 1, P50us: 1500}},
		})
		r.Runs[len(r.Runs)-1].WGGo.Upload.RetransPct = 0.001
		r.Runs[len(r.Runs)-1].Warren.Upload.RetransPct = 0.01
	}
	r.Memory = []procMemory{{Path: "warren", Role: roleClient, PeakMB: 120}, {Path: "wggo", Role: roleClient, PeakMB: 400}}
	r.summarize()
	up := r.figure("upload_gbps")
	// Ratios 0.25, 0.75, 0.8: the median is 0.75, not 1.5/3.
	if *up.Veth != 20 || *up.WGGo != 3 || *up.Warren != 1.5 || *up.Ratio != 0.75 || up.Verdict != "meets floor" {
		t.Errorf("upload figure: veth %v wggo %v warren %v ratio %v %q", *up.Veth, *up.WGGo, *up.Warren, *up.Ratio, up.Verdict)
	}
	if f := r.figure("upload_retrans_pct"); f.Ratio != nil {
		t.Errorf("retransmits have a ratio to stock (%v): a rate of events has none", *f.Ratio)
	}
	for key, want := range map[string]string{
		"download_gbps":       "no data",
		"connect_p50_us":      "MISSES floor",
		"peak_rss_mb_client":  "meets floor",
		"upload_retrans_pct":  "meets floor",
		"relay_vs_direct":     "n/a: no direct path yet",
		"upload_parallel_gbp": "",
	} {
		f := r.figure(key)
		if f == nil {
			if want != "" {
				t.Errorf("no figure %s", key)
			}
			continue
		}
		if f.Verdict != want {
			t.Errorf("%s: verdict %q, want %q", key, f.Verdict, want)
		}
	}
	var out bytes.Buffer
	r.print(&out)
	for _, f := range r.Figures {
		if !strings.Contains(out.String(), f.Label) {
			t.Errorf("table lacks %q:\n%s", f.Label, out.String())
		}
	}
}

func TestLoadConfig(t *testing.T) {
	t.Setenv(runsEnv, "1")
	t.Setenv(outEnv, "/tmp/x.json")
	c, err := loadConfig()
	if err != nil || c.Runs != 1 || c.Seconds != 5 || c.Out != "/tmp/x.json" {
		t.Errorf("got %+v, %v", c, err)
	}
	t.Setenv(runsEnv, "0")
	if _, err := loadConfig(); err == nil || !strings.Contains(err.Error(), runsEnv) {
		t.Errorf("runs 0: got %v, want an error naming %s", err, runsEnv)
	}
}

func TestParseCPUTimes(t *testing.T) {
	idle, total, err := parseCPUTimes("cpu  100 5 50 800 20 3 2 0 7 0")
	if err != nil || idle != 820 || total != 980 {
		t.Errorf("got idle %d total %d, %v; want 820 980", idle, total, err)
	}
	if _, _, err := parseCPUTimes("cpu0 1 2"); err == nil {
		t.Error("short line: got no error")
	}
}
