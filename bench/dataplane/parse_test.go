package dataplane

import (
	"bytes"
	"encoding/json"
	"fmt"
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
// of a report on both Warren paths, and that its table prints every
// figure.
func TestSummarize(t *testing.T) {
	x := func(gbps float64) *transfer { return &transfer{GbitPerSecond: gbps} }
	r := &report{Config: config{Streams: 8}}
	for _, v := range []struct{ wg, w, d float64 }{{4, 1, 4}, {2, 1.5, 1}, {3, 2.4, 3.3}} {
		r.Runs = append(r.Runs, runResult{
			Veth:   pathResult{Upload: x(20)},
			WGGo:   pathResult{Upload: x(v.wg), Download: x(v.wg)},
			Warren: pathResult{Upload: x(v.w), Connect: &latency{N: 1, P50us: 1500}},
			Direct: pathResult{Upload: x(v.d), Connect: &latency{N: 1, P50us: 500}},
		})
		last := &r.Runs[len(r.Runs)-1]
		last.WGGo.Upload.RetransPct = 0.001
		last.Warren.Upload.RetransPct = 0.01
		last.Direct.Upload.RetransPct = 0.5
	}
	r.Memory = []procMemory{
		{Path: "warren", Role: roleClient, IdleMB: 22, PeakMB: 120},
		{Path: "wggo", Role: roleClient, IdleMB: 8, PeakMB: 400},
		{Path: "direct", Role: roleClient, IdleMB: 31, PeakMB: 200},
	}
	r.summarize()
	up := r.figure("upload_gbps")
	// Relay ratios 0.25, 0.75, 0.8: the median is 0.75, not 1.5/3.
	// Direct ratios 1, 0.5, 1.1: the median is 1, not 3.3/3.
	if *up.Veth != 20 || *up.WGGo != 3 || *up.Warren != 1.5 || *up.Ratio != 0.75 || up.Verdict != "meets floor" {
		t.Errorf("upload figure, relay: veth %v wggo %v warren %v ratio %v %q", *up.Veth, *up.WGGo, *up.Warren, *up.Ratio, up.Verdict)
	}
	if *up.Direct != 3.3 || *up.DirectRatio != 1 || up.DirectRuns != 3 || up.DirectVerdict != "meets goal" {
		t.Errorf("upload figure, direct: %v ratio %v runs %d %q", *up.Direct, *up.DirectRatio, up.DirectRuns, up.DirectVerdict)
	}
	if f := r.figure("upload_retrans_pct"); f.Ratio != nil || f.DirectRatio != nil {
		t.Errorf("retransmits have a ratio to stock (%v, %v): a rate of events has none", f.Ratio, f.DirectRatio)
	}
	for _, tt := range []struct {
		key, relay, direct string
	}{
		{"download_gbps", "no data", "no data"},
		{"connect_p50_us", "MISSES floor", "meets goal"},
		{"peak_rss_mb_client", "meets floor", "MISSES floor"},
		{"idle_rss_mb_client", "meets goal", "meets floor"},
		{"upload_retrans_pct", "meets floor", "MISSES floor"},
		{"upload_parallel_gbps", "", ""},
		// Upload ratios 0.25, 1.5, 0.73; no download: no data.
		{"relay_vs_direct", "no data", ""},
		{"relay_vs_direct_upload", "", ""},
	} {
		f := r.figure(tt.key)
		if f == nil {
			t.Errorf("no figure %s", tt.key)
			continue
		}
		if f.Verdict != tt.relay || f.DirectVerdict != tt.direct {
			t.Errorf("%s: verdicts %q, %q; want %q, %q", tt.key, f.Verdict, f.DirectVerdict, tt.relay, tt.direct)
		}
	}
	if f := r.figure("peak_rss_mb_client"); f.DirectRatio == nil || *f.DirectRatio != 0.5 {
		t.Errorf("peak RSS, direct ÷ wg-go: got %v, want 0.5", f.DirectRatio)
	}
	var out bytes.Buffer
	r.print(&out)
	for _, f := range r.Figures {
		if !strings.Contains(out.String(), f.Label) {
			t.Errorf("table lacks %q:\n%s", f.Label, out.String())
		}
	}
	for _, want := range []string{"relay÷wg-go", "direct÷wg-go", "verdict direct", "3.30", "1.00×",
		"relay ÷ wg-go, run by run: upload 0.25 0.75 0.80\n", "direct ÷ wg-go, run by run: upload 1.00 0.50 1.10\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

// TestRelayVsDirect checks the relay ÷ direct rows: the median of the
// same-run ratios in each direction, and the worse of the two, which the
// floor (0.5×) and goal (0.8×) judge.
func TestRelayVsDirect(t *testing.T) {
	x := func(gbps float64) *transfer { return &transfer{GbitPerSecond: gbps} }
	type run struct{ relayUp, relayDown, directUp, directDown float64 } // 0: not taken
	pr := func(up, down float64) pathResult {
		var p pathResult
		if up != 0 {
			p.Upload = x(up)
		}
		if down != 0 {
			p.Download = x(down)
		}
		return p
	}
	f := func(v float64) *float64 { return &v }
	for _, tt := range []struct {
		name          string
		runs          []run
		missing       string
		up, down, min *float64
		runsMin       int
		verdict       string
	}{
		{name: "download worse, meets floor", runs: []run{{1, 0.6, 1, 1}, {0.9, 0.7, 1, 1}, {0.8, 0.5, 1, 1}},
			up: f(0.9), down: f(0.6), min: f(0.6), runsMin: 3, verdict: "meets floor"},
		{name: "upload worse, misses floor", runs: []run{{0.2, 1, 1, 1}},
			up: f(0.2), down: f(1), min: f(0.2), runsMin: 1, verdict: "MISSES floor"},
		{name: "relay faster than direct", runs: []run{{2, 3, 1, 2}},
			up: f(2), down: f(1.5), min: f(1.5), runsMin: 1, verdict: "meets goal"},
		// Ratios are same-run: 1/2 and 4/1, median 2.25 (not 2.5/1.5).
		{name: "same-run ratios, even count", runs: []run{{1, 1, 2, 1}, {4, 1, 1, 1}},
			up: f(2.25), down: f(1), min: f(1), runsMin: 2, verdict: "meets goal"},
		{name: "a run without direct figures is left out", runs: []run{{0.5, 0.5, 0, 0}, {0.9, 0.9, 1, 1}},
			up: f(0.9), down: f(0.9), min: f(0.9), runsMin: 1, verdict: "meets goal"},
		{name: "no direct download", runs: []run{{1, 1, 1, 0}},
			up: f(1), verdict: "no data"},
		{name: "direct path missing", runs: []run{{1, 1, 0, 0}}, missing: "warren status never showed it",
			verdict: "no data: no direct path"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := &report{Config: config{Streams: 8}, DirectMissing: tt.missing}
			for _, v := range tt.runs {
				r.Runs = append(r.Runs, runResult{WGGo: pr(1, 1), Warren: pr(v.relayUp, v.relayDown), Direct: pr(v.directUp, v.directDown)})
			}
			r.summarize()
			for key, want := range map[string]*float64{"relay_vs_direct_upload": tt.up, "relay_vs_direct_download": tt.down, "relay_vs_direct": tt.min} {
				got := r.figure(key)
				if got == nil {
					t.Fatalf("no figure %s", key)
				}
				if diff := cmp.Diff(want, got.Warren); diff != "" {
					t.Errorf("%s (-want +got):\n%s", key, diff)
				}
				if got.Direct != nil || got.DirectVerdict != "" {
					t.Errorf("%s: a direct value %v or verdict %q", key, got.Direct, got.DirectVerdict)
				}
			}
			worse := r.figure("relay_vs_direct")
			if worse.Verdict != tt.verdict || worse.Runs != tt.runsMin || worse.Floor != "≥ 0.5×" || worse.Goal != "≥ 0.8×" {
				t.Errorf("worse row: verdict %q runs %d floor %q goal %q; want %q, %d runs", worse.Verdict, worse.Runs, worse.Floor, worse.Goal, tt.verdict, tt.runsMin)
			}
		})
	}
}

func TestPrintDirectMissing(t *testing.T) {
	r := &report{Config: config{Streams: 8}, DirectMissing: "warren status never showed \"via office (direct …)\":\nafter 30s: via relay"}
	r.Runs = []runResult{{WGGo: pathResult{Upload: &transfer{GbitPerSecond: 2}}, Warren: pathResult{Upload: &transfer{GbitPerSecond: 1}}}}
	r.summarize()
	var out bytes.Buffer
	r.print(&out)
	for _, want := range []string{"direct  MISSING, no figures: warren status never showed", "after 30s: via relay", "no data: no direct path"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if f := r.figure("upload_gbps"); f.Direct != nil || f.DirectVerdict != "no data" || f.Verdict != "MISSES floor" {
		t.Errorf("upload: direct %v, verdicts %q (relay), %q (direct)", f.Direct, f.Verdict, f.DirectVerdict)
	}
}

func TestPrintExtras(t *testing.T) {
	tests := []struct {
		name string
		x    extras
		want []string
	}{{
		name: "cold start within the goals",
		x:    extras{Cold: []coldStart{{UpMs: 412, FirstConnectUs: 900}, {UpMs: 655, FirstConnectUs: 1600}}},
		want: []string{"first connection, worst  657 ms (413, 657)  ≤ 2 s  ≤ 1 s  meets goal", "fresh tunnel, worst  1.6 ms  ≤ 20 ms  ≤ 10 ms  meets goal"},
	}, {
		name: "a slow up and a slow connect",
		x:    extras{Cold: []coldStart{{UpMs: 1980, FirstConnectUs: 25000}, {UpMs: 300, FirstConnectUs: 12000}}},
		want: []string{"first connection, worst  2005 ms (2005, 312)  ≤ 2 s  ≤ 1 s  MISSES floor", "fresh tunnel, worst  25.0 ms  ≤ 20 ms  ≤ 10 ms  MISSES floor"},
	}, {
		name: "loss per batch and per datagram, each against its own baseline",
		x: extras{Loss: []lossResult{
			{Direction: "download", GbitPerSecond: 0.53, LosslessGbps: 2.93, RatioLossless: ptr(0.53 / 2.93), IntervalsGbps: make([]float64, 10)},
			{Direction: "download", PerDatagram: true, GbitPerSecond: 0.4, LosslessGbps: 1.25, RatioLossless: ptr(0.4 / 1.25), StalledSeconds: 1, IntervalsGbps: make([]float64, 10)},
		}},
		want: []string{
			"T8 download, 1 % of GSO batches lost: stalled seconds  0 of 10  0  meets floor",
			"T8 download, 1 % of GSO batches lost ÷ lossless  0.18× (0.53 of 2.93 Gbit/s)  ≥ 0.3×  meets floor",
			"T8 download, 1 % of datagrams lost: stalled seconds  1 of 10  0  MISSES floor",
			"T8 download, 1 % of datagrams lost ÷ lossless  0.32× (0.40 of 1.25 Gbit/s)  ≥ 0.3×  meets goal",
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := tt.x
			x.Path = "direct"
			r := &report{Extras: &x}
			var out bytes.Buffer
			r.printExtras(&out)
			got := strings.Join(strings.Fields(out.String()), " ")
			for _, want := range tt.want {
				if !strings.Contains(got, strings.Join(strings.Fields(want), " ")) {
					t.Errorf("output lacks %q:\n%s", want, out.String())
				}
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	x := func(gbps float64) *transfer { return &transfer{GbitPerSecond: gbps} }
	r := &report{Config: config{Streams: 8}}
	r.Runs = []runResult{{WGGo: pathResult{Upload: x(2), Download: x(2)}, Warren: pathResult{Upload: x(1), Download: x(0.5)},
		Direct: pathResult{Upload: x(2), Download: x(1)}}}
	r.summarize()
	got := map[string]float64{}
	for _, m := range r.metrics() {
		got[m.unit] = m.value
	}
	want := map[string]float64{
		"warren-up-Gbit/s": 1, "warren-up-x-wggo": 0.5, "warren-down-Gbit/s": 0.5, "warren-down-x-wggo": 0.25,
		"direct-up-Gbit/s": 2, "direct-up-x-wggo": 1, "direct-down-Gbit/s": 1, "direct-down-x-wggo": 0.5,
		"relay-x-direct-worse": 0.5,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
}

func TestRouteVia(t *testing.T) {
	const head = "up on warren0 as laptop (100.96.0.2)\nnetmap v3\n\nROUTE           CONNECTOR  LIVE  WHY\n"
	for _, tt := range []struct{ status, want string }{
		{head + "192.168.0.0/24  office     yes   via office (relay)\n", "relay"},
		{head + "192.168.0.0/24  office     yes   via office (direct 198.51.100.20:41641)\n", "direct 198.51.100.20:41641"},
		{head + "192.168.0.0/24  office     no    waiting for a handshake with connector office\n", ""},
		{"not enrolled: run warren up --token TOKEN", ""},
		{"via office (direct 198.51.100.20:4", ""}, // cut short
	} {
		if got := routeVia(tt.status); got != tt.want {
			t.Errorf("routeVia(%q) = %q, want %q", tt.status, got, tt.want)
		}
	}
}

func TestMemoryRows(t *testing.T) {
	idle := map[memKey]procMemory{
		{"direct", roleClient}: {EndMB: 3},
		{"warren", roleRelay}:  {EndMB: 2},
		{"wggo", roleServer}:   {EndMB: 1, Error: "gone"},
	}
	end := map[memKey]procMemory{}
	for k := range idle {
		end[k] = procMemory{Path: k.path, Role: k.role, EndMB: 10, PeakMB: 20}
	}
	end[memKey{"warren", roleClient}] = procMemory{Path: "warren", Role: roleClient, EndMB: 10, PeakMB: 20}
	var got []string
	for _, m := range memoryRows(idle, end) {
		got = append(got, fmt.Sprintf("%s %s %.0f %s", m.Path, m.Role, m.IdleMB, m.Error))
	}
	want := []string{"wggo server 1 gone", "warren client 0 ", "warren relay 2 ", "direct client 3 "}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("memoryRows (-want +got):\n%s", diff)
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

func TestJain(t *testing.T) {
	for _, tc := range []struct {
		xs   []float64
		want float64
	}{
		{[]float64{5, 5, 5, 5}, 1},
		{[]float64{1, 0, 0, 0}, 0.25},
		{[]float64{2, 1}, 0.9},
		{nil, 0},
		{[]float64{0, 0}, 0},
	} {
		if got := jain(tc.xs); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("jain(%v) = %v, want %v", tc.xs, got, tc.want)
		}
	}
}

func TestParseIperfDetail(t *testing.T) {
	const udp = `{"intervals":[{"sum":{"bytes":1000,"seconds":1.0,"omitted":false}},{"sum":{"bytes":0,"seconds":1.0,"omitted":false}}],
		"end":{"streams":[{"receiver":{"bits_per_second":3e8}},{"receiver":{"bits_per_second":1e8}}],
		"sum":{"bits_per_second":5e8,"lost_percent":1.5,"packets":1000},"sum_received":{"bits_per_second":4e8}}}`
	d, err := parseIperfDetail([]byte(udp))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Intervals) != 2 || d.Intervals[1].Sum.Bytes != 0 || d.Intervals[0].Sum.Seconds != 1 {
		t.Errorf("intervals %+v", d.Intervals)
	}
	if len(d.End.Streams) != 2 || d.End.Streams[0].Receiver.BitsPerSecond != 3e8 {
		t.Errorf("streams %+v", d.End.Streams)
	}
	if s := d.End.Sum; s.LostPercent != 1.5 || s.Packets != 1000 || s.BitsPerSecond != 5e8 || d.End.SumReceived.BitsPerSecond != 4e8 {
		t.Errorf("end %+v", d.End)
	}
	if _, err := parseIperfDetail([]byte(`{"error":"unable to connect"}`)); err == nil || !strings.Contains(err.Error(), "unable to connect") {
		t.Errorf("an iperf3 error gave %v", err)
	}
}

// TestPolicyReport checks the policy path's medians and same-run ratios
// to the direct path, the goal rows' verdicts (shown, not asserted), the
// printed section, the metrics and the JSON keys.
func TestPolicyReport(t *testing.T) {
	x := func(gbps float64) *transfer { return &transfer{GbitPerSecond: gbps} }
	c := func(p50, p99 float64) *latency { return &latency{N: 100, P50us: p50, P99us: p99} }
	type run struct{ up, down, connect, pUp, pDown, pConnect float64 } // 0: not taken
	pr := func(up, down, connect float64) pathResult {
		var p pathResult
		if up != 0 {
			p.Upload = x(up)
		}
		if down != 0 {
			p.Download = x(down)
		}
		if connect != 0 {
			p.Connect = c(connect, 2*connect)
		}
		return p
	}
	f := func(v float64) *float64 { return &v }
	for _, tt := range []struct {
		name                         string
		runs                         []run
		missing                      string
		up, down, connect            *float64 // policy ÷ direct medians
		upVerdict, downVerdict       string
		connectVerdict, connectValue string
	}{
		{
			name: "within 5 %",
			// Upload ratios 1.0, 0.96, 0.5: the median is 0.96, not
			// the ratio of the medians (2.0/2.0).
			runs: []run{{2, 2, 400, 2, 2, 400}, {2.5, 2, 500, 2.4, 1.9, 520}, {4, 2, 400, 2, 2, 410}},
			up:   f(0.96), down: f(1), connect: f(1.025),
			upVerdict: "meets goal", downVerdict: "meets goal", connectVerdict: "meets goal", connectValue: "410",
		},
		{
			name: "slower connects, slower download",
			runs: []run{{2, 2, 400, 2, 1.8, 440}},
			up:   f(1), down: f(0.9), connect: f(1.1),
			upVerdict: "meets goal", downVerdict: "misses goal", connectVerdict: "misses goal", connectValue: "440",
		},
		{
			name: "a run without a policy figure is left out",
			runs: []run{{2, 2, 400, 0, 0, 0}, {2, 2, 400, 2, 2, 400}},
			up:   f(1), down: f(1), connect: f(1),
			upVerdict: "meets goal", downVerdict: "meets goal", connectVerdict: "meets goal", connectValue: "400",
		},
		{
			name:      "no policy path",
			runs:      []run{{2, 2, 400, 0, 0, 0}},
			missing:   "warren policy set: exit status 1",
			upVerdict: "no data: no policy path", downVerdict: "no data: no policy path", connectVerdict: "no data: no policy path",
			connectValue: "—",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := &report{Config: config{Streams: 8}, PolicyMissing: tt.missing}
			if tt.missing == "" {
				r.Policy = &policyInfo{Rules: policyRules, Groups: 24, Users: 145, User: benchUser, AllowRule: 198, Bytes: 42000, Enforced: true,
					Loads: []policyLoadTiming{{InForceMs: 120, ClearedMs: 90}, {InForceMs: 80, ClearedMs: 70}, {InForceMs: 100, ClearedMs: 60}}}
			}
			for _, v := range tt.runs {
				r.Runs = append(r.Runs, runResult{WGGo: pr(2, 2, 300), Direct: pr(v.up, v.down, v.connect), Policy: pr(v.pUp, v.pDown, v.pConnect)})
			}
			r.summarize()
			for _, row := range []struct {
				key     string
				want    *float64
				verdict string
				goal    string
			}{
				{"upload_gbps", tt.up, tt.upVerdict, "≥ 0.95×"},
				{"download_gbps", tt.down, tt.downVerdict, "≥ 0.95×"},
				{"connect_p50_us", tt.connect, tt.connectVerdict, "≤ 1.05×"},
			} {
				base, got := r.figure(row.key), r.figure(policyVsNone(row.key))
				if base == nil || got == nil {
					t.Fatalf("no figure %s or its policy row", row.key)
				}
				if diff := cmp.Diff(row.want, got.Direct, cmpApprox); diff != "" {
					t.Errorf("%s policy ÷ none (-want +got):\n%s", row.key, diff)
				}
				if diff := cmp.Diff(row.want, base.PolicyToDirect, cmpApprox); diff != "" {
					t.Errorf("%s PolicyToDirect (-want +got):\n%s", row.key, diff)
				}
				if got.DirectVerdict != row.verdict || got.Goal != row.goal || got.Verdict != "" || got.Warren != nil {
					t.Errorf("%s row: verdict %q goal %q (relay: %v %q); want %q, %q", row.key, got.DirectVerdict, got.Goal, got.Warren, got.Verdict, row.verdict, row.goal)
				}
			}
			if f := r.figure("connect_p99_us"); f.Policy == nil && tt.missing == "" {
				t.Error("connect p99: no policy value")
			}
			if r.figure(policyVsNone("connect_p99_us")) != nil || r.figure(policyVsNone("rtt_p50_us")) != nil {
				t.Error("a policy row for a figure without a policy goal")
			}
			if f := r.figure("rtt_p50_us"); f.Policy != nil || f.PolicyRuns != 0 {
				t.Errorf("1-byte RTT has policy figures (%v): the policy path does not take it", f.Policy)
			}

			var out bytes.Buffer
			r.print(&out)
			got := strings.Join(strings.Fields(out.String()), " ")
			want := []string{"200-rule policy ÷ none, upload ⁵", "200-rule policy ÷ none, connect p50 ⁵"}
			if tt.missing != "" {
				want = append(want, "policy MISSING, no figures: warren policy set", "access policy: MISSING")
			} else {
				want = append(want, "reaches lanhost's iperf3 and echo ports by rule 198 only",
					"by rule 198 only. In force 100 ms after policy set began (median of 3 loads), allow-all again 70 ms after policy reset",
					"TCP connect p50 µs 400 "+tt.connectValue+" "+format(tt.connect, "×")+" ≤ 1.05× "+tt.connectVerdict,
					"policy ÷ direct, run by run: upload ")
			}
			for _, w := range want {
				if !strings.Contains(got, w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}

			ms := map[string]float64{}
			for _, m := range r.metrics() {
				ms[m.unit] = m.value
			}
			if v, ok := ms["policy-up-x-none"]; (tt.up != nil) != ok || ok && math.Abs(v-*tt.up) > 1e-9 {
				t.Errorf("metric policy-up-x-none = %v, %v; want %v", v, ok, tt.up)
			}
		})
	}
}

// cmpApprox compares ratios of float figures.
var cmpApprox = cmp.Comparer(func(a, b float64) bool { return math.Abs(a-b) < 1e-9 })

func TestPolicyReportNotEnforced(t *testing.T) {
	r := &report{Config: config{Streams: 8}, Policy: &policyInfo{Rules: policyRules, Enforced: false}}
	r.Runs = []runResult{{Direct: pathResult{Upload: &transfer{GbitPerSecond: 2}}, Policy: pathResult{Upload: &transfer{GbitPerSecond: 2}}}}
	r.summarize()
	var out bytes.Buffer
	r.print(&out)
	if got := strings.Join(strings.Fields(out.String()), " "); !strings.Contains(got, "NOT ENFORCED: with the document set, the connector let a connect through to lanhost:7008") {
		t.Errorf("output does not say the policy was not enforced:\n%s", out.String())
	}
	// The ratio is shown, but judged against no goal.
	if f := r.figure(policyVsNone("upload_gbps")); f.Direct == nil || *f.Direct != 1 || f.DirectVerdict != "no data: not enforced" {
		t.Errorf("policy ÷ none, upload: %v, verdict %q; want 1, \"no data: not enforced\"", f.Direct, f.DirectVerdict)
	}
}

// TestPolicyJSON checks the report's JSON keeps its keys and adds the
// policy path's.
func TestPolicyJSON(t *testing.T) {
	r := &report{Config: config{Streams: 8}, Policy: &policyInfo{Rules: policyRules, Enforced: true, Loads: []policyLoadTiming{{Run: 1, Figure: "upload", SetMs: 50, InForceMs: 80}}}}
	r.Runs = []runResult{{WGGo: pathResult{Upload: &transfer{GbitPerSecond: 2}}, Direct: pathResult{Upload: &transfer{GbitPerSecond: 2}},
		Policy: pathResult{Upload: &transfer{GbitPerSecond: 1.9}}}}
	r.summarize()
	path := t.TempDir() + "/latest.json"
	if err := r.write(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var j struct {
		Policy  map[string]any   `json:"policy"`
		Runs    []map[string]any `json:"runs"`
		Figures []map[string]any `json:"figures"`
	}
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	if j.Policy["rules"] != float64(policyRules) || j.Policy["enforced"] != true || j.Policy["loads"] == nil {
		t.Errorf("policy: %v", j.Policy)
	}
	for _, k := range []string{"wggo", "warren", "direct", "naive", "direct_policy"} {
		if _, ok := j.Runs[0][k]; !ok {
			t.Errorf("runs[0] lacks %q", k)
		}
	}
	figs := map[string]map[string]any{}
	for _, f := range j.Figures {
		figs[f["key"].(string)] = f
	}
	up := figs["upload_gbps"]
	if up["direct"] != 2.0 || up["direct_ratio_to_wggo"] != 1.0 || up["direct_policy"] != 1.9 || math.Abs(up["policy_ratio_to_direct"].(float64)-0.95) > 1e-9 {
		t.Errorf("upload_gbps: %v", up)
	}
	row := figs["policy_vs_none_upload_gbps"]
	if row == nil || math.Abs(row["direct"].(float64)-0.95) > 1e-9 || row["goal"] != "≥ 0.95×" || row["direct_verdict"] != "meets goal" {
		t.Errorf("policy_vs_none_upload_gbps: %v", row)
	}
}

func TestProbeRefused(t *testing.T) {
	for _, tt := range []struct {
		name    string
		s       samplesOut
		refused bool
		err     bool
	}{
		{"connected", samplesOut{Samples: []int64{300000}}, false, false},
		{"refused", samplesOut{Failures: 1, FirstError: "dial tcp 192.168.0.10:7008: connect: connection refused"}, true, false},
		{"timed out", samplesOut{Failures: 1, FirstError: "dial tcp 192.168.0.10:7008: i/o timeout"}, false, true},
		{"nothing", samplesOut{}, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			refused, err := probeRefused(tt.s)
			if refused != tt.refused || (err != nil) != tt.err {
				t.Errorf("got %v, %v; want refused %v, error %v", refused, err, tt.refused, tt.err)
			}
		})
	}
}
