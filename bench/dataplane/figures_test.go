package dataplane

import "fmt"

// figure is one row of the table: the median over runs of each path,
// and the median over runs of the same-run ratios relay ÷ wg-go and
// direct ÷ wg-go. Warren, Ratio, Runs and Verdict are the relay path's
// (the keys predate the direct path); Direct, DirectRatio, DirectRuns
// and DirectVerdict the direct path's. In the relay ÷ direct rows (unit
// ×), Warren is the median of the same-run ratios relay ÷ direct.
type figure struct {
	Key           string   `json:"key"`
	Label         string   `json:"label"`
	Unit          string   `json:"unit"`
	Veth          *float64 `json:"veth,omitempty"`
	WGGo          *float64 `json:"wggo,omitempty"`
	Warren        *float64 `json:"warren,omitempty"`
	Ratio         *float64 `json:"ratio_to_wggo,omitempty"`
	Runs          int      `json:"runs"` // runs that gave the Warren value
	Direct        *float64 `json:"direct,omitempty"`
	DirectRatio   *float64 `json:"direct_ratio_to_wggo,omitempty"`
	DirectRuns    int      `json:"direct_runs"` // runs that gave the Direct value
	Floor         string   `json:"floor,omitempty"`
	Goal          string   `json:"goal,omitempty"`
	Verdict       string   `json:"verdict,omitempty"`
	DirectVerdict string   `json:"direct_verdict,omitempty"`
	// Naive is the naive connector's median; RelayToNaive and
	// DirectToNaive the medians of each run's Warren figure ÷ that run's
	// naive one.
	Naive         *float64 `json:"naive,omitempty"`
	RelayToNaive  *float64 `json:"relay_ratio_to_naive,omitempty"`
	DirectToNaive *float64 `json:"direct_ratio_to_naive,omitempty"`
	// Policy is the policy path's median (the direct path with the
	// access policy loaded), PolicyToDirect the median of each run's
	// policy figure ÷ that run's direct one, PolicyRuns how many runs
	// gave both. The policy ÷ none rows judge the goal.
	Policy         *float64 `json:"direct_policy,omitempty"`
	PolicyToDirect *float64 `json:"policy_ratio_to_direct,omitempty"`
	PolicyRuns     int      `json:"policy_runs,omitempty"`
}

// bound is a floor or goal on a figure.
type bound struct {
	ratio  bool // on the path's ratio to wg-go, else on its value
	atMost bool // ≤, else ≥
	v      float64
	text   string
}

// met reports whether a path's value (or its ratio to wg-go) clears b,
// and whether it could tell.
func (b *bound) met(value, ratio *float64) (ok, known bool) {
	x := value
	if b.ratio {
		x = ratio
	}
	if x == nil {
		return false, false
	}
	if b.atMost {
		return *x <= b.v, true
	}
	return *x >= b.v, true
}

// figureDef says how to take a figure from a run. get serves the wg-go
// and both Warren paths (and the veth one when veth is set).
type figureDef struct {
	key, label, unit string
	veth             bool
	// count: a rate of events (retransmits, drops), which has no
	// meaningful ratio to stock wireguard-go's, often zero or near it.
	count       bool
	get         func(*pathResult) (float64, bool)
	floor, goal *bound
	// policy is the figure's short name where the policy path is
	// compared with the direct path; empty for a figure the policy path
	// does not take. policyGoal, when set, is the goal on the policy ÷
	// none ratio, shown in a row of its own.
	policy     string
	policyGoal *bound
}

func xferGet(pick func(*pathResult) *transfer, val func(*transfer) (float64, bool)) func(*pathResult) (float64, bool) {
	return func(pr *pathResult) (float64, bool) {
		t := pick(pr)
		if t == nil {
			return 0, false
		}
		return val(t)
	}
}

func upload(pr *pathResult) *transfer   { return pr.Upload }
func download(pr *pathResult) *transfer { return pr.Download }
func upload8(pr *pathResult) *transfer  { return pr.Upload8 }

func gbps(t *transfer) (float64, bool)       { return t.GbitPerSecond, true }
func retrans(t *transfer) (float64, bool)    { return t.RetransPct, true }
func ofo(t *transfer) (float64, bool)        { return t.ReceiverOFOPct, true }
func tunDropped(t *transfer) (float64, bool) { return float64(t.TunDropped), true }
func udpDrops(t *transfer) (float64, bool)   { return float64(t.UDPRcvbufErrors), true }
func cpuPerGB(role string) func(*transfer) (float64, bool) {
	return func(t *transfer) (float64, bool) {
		v, ok := t.CPUSecondsPerGB[role]
		return v, ok
	}
}

func latGet(pick func(*pathResult) *latency, val func(*latency) float64) func(*pathResult) (float64, bool) {
	return func(pr *pathResult) (float64, bool) {
		l := pick(pr)
		if l == nil || l.N == 0 {
			return 0, false
		}
		return val(l), true
	}
}

func connect(pr *pathResult) *latency    { return pr.Connect }
func rr(pr *pathResult) *latency         { return pr.RR }
func rrLoaded(pr *pathResult) *latency   { return pr.RRLoaded }
func rrUpLoaded(pr *pathResult) *latency { return pr.RRUpLoaded }
func p50(l *latency) float64             { return l.P50us }
func p99(l *latency) float64             { return l.P99us }

// The floors and goals: the data-plane issue's (upload ≥ 0.6×, download
// ≥ 0.4×, goal ≥ 1.0× both ways, relay ≥ 0.5× direct, goal 0.8×,
// retransmits ≤ 0.1 %, connect p50 ≤ 1 ms, client RSS ≤ 150 MB) and,
// where it names none, perf-anchors §7 (L1, L2, M3, M4). Each is judged
// on the relay path and on the direct path separately.
var (
	retransFloor = &bound{atMost: true, v: 0.1, text: "≤ 0.1 %"}
	retransGoal  = &bound{atMost: true, v: 0, text: "0"}
	// On the worse of the relay ÷ direct medians, up and down.
	relayVsDirectFloor = &bound{v: 0.5, text: "≥ 0.5×"}
	relayVsDirectGoal  = &bound{v: 0.8, text: "≥ 0.8×"}
	// The access policy's cost (issue 15: "within 5 % of no policy"):
	// throughput at least 0.95×, connect time at most 1.05× the direct
	// path's without a policy. A goal, shown, never asserted.
	policyFasterGoal = &bound{v: 0.95, text: "≥ 0.95×"}
	policySlowerGoal = &bound{atMost: true, v: 1.05, text: "≤ 1.05×"}
)

func figureDefs(streams int) []figureDef {
	defs := []figureDef{
		{key: "upload_gbps", label: "upload, 1 stream", unit: "Gbit/s", veth: true, get: xferGet(upload, gbps),
			floor: &bound{ratio: true, v: 0.6, text: "≥ 0.6×"}, goal: &bound{ratio: true, v: 1.0, text: "≥ 1.0×"},
			policy: "upload", policyGoal: policyFasterGoal},
		{key: "download_gbps", label: "download (-R), 1 stream", unit: "Gbit/s", get: xferGet(download, gbps),
			floor: &bound{ratio: true, v: 0.4, text: "≥ 0.4×"}, goal: &bound{ratio: true, v: 1.0, text: "≥ 1.0×"},
			policy: "download", policyGoal: policyFasterGoal},
		{key: "upload_parallel_gbps", label: fmt.Sprintf("upload, -P %d", streams), unit: "Gbit/s", get: xferGet(upload8, gbps)},
		{key: "upload_retrans_pct", count: true, label: "retransmits, upload", unit: "%", get: xferGet(upload, retrans), floor: retransFloor, goal: retransGoal},
		{key: "download_retrans_pct", count: true, label: "retransmits, download ¹", unit: "%", get: xferGet(download, retrans), floor: retransFloor, goal: retransGoal},
		{key: "upload_parallel_retrans_pct", count: true, label: fmt.Sprintf("retransmits, upload -P %d", streams), unit: "%", get: xferGet(upload8, retrans), floor: retransFloor, goal: retransGoal},
		{key: "download_receiver_ofo_pct", count: true, label: "out-of-order at receiver, download ¹", unit: "%", get: xferGet(download, ofo)},
		{key: "upload_tun_dropped", count: true, label: "packets dropped at a TUN, upload ³", unit: "pkts", get: xferGet(upload, tunDropped)},
		{key: "download_tun_dropped", count: true, label: "packets dropped at a TUN, download ³", unit: "pkts", get: xferGet(download, tunDropped)},
		{key: "upload_udp_rcvbuf_errors", count: true, label: "UDP receive-buffer drops, upload ³", unit: "pkts", get: xferGet(upload, udpDrops)},
		{key: "download_udp_rcvbuf_errors", count: true, label: "UDP receive-buffer drops, download ³", unit: "pkts", get: xferGet(download, udpDrops)},
		{key: "connect_p50_us", label: "TCP connect p50", unit: "µs", get: latGet(connect, p50),
			floor: &bound{atMost: true, v: 1000, text: "≤ 1 ms"}, goal: &bound{atMost: true, v: 600, text: "≤ 600 µs"},
			policy: "connect p50", policyGoal: policySlowerGoal},
		{key: "connect_p99_us", label: "TCP connect p99", unit: "µs", get: latGet(connect, p99),
			floor: &bound{atMost: true, v: 3000, text: "≤ 3 ms"}, policy: "connect p99"},
		{key: "rtt_p50_us", label: "1-byte RTT p50", unit: "µs", get: latGet(rr, p50),
			floor: &bound{atMost: true, v: 400, text: "≤ 400 µs"}, goal: &bound{atMost: true, v: 250, text: "≤ 250 µs"}},
		{key: "rtt_p99_us", label: "1-byte RTT p99", unit: "µs", get: latGet(rr, p99),
			floor: &bound{atMost: true, v: 2000, text: "≤ 2 ms"}, goal: &bound{atMost: true, v: 1000, text: "≤ 1 ms"}},
		{key: "rtt_loaded_p50_us", label: "1-byte RTT p50, during a download", unit: "µs", get: latGet(rrLoaded, p50)},
		{key: "rtt_loaded_p99_us", label: "1-byte RTT p99, during a download", unit: "µs", get: latGet(rrLoaded, p99)},
		{key: "rtt_uploading_p50_us", label: "1-byte RTT p50, during an upload", unit: "µs", get: latGet(rrUpLoaded, p50)},
		{key: "rtt_uploading_p99_us", label: "1-byte RTT p99, during an upload", unit: "µs", get: latGet(rrUpLoaded, p99)},
	}
	for _, dir := range []struct {
		name string
		pick func(*pathResult) *transfer
	}{{"upload", upload}, {"download", download}} {
		for _, r := range []struct{ role, label string }{
			{roleClient, "client side ²"}, {roleServer, "server side ²"}, {roleRelay, "relay"}, {"total", "all tunnel processes"},
		} {
			d := figureDef{key: dir.name + "_cpu_s_per_gb_" + r.role, label: "CPU, " + dir.name + ", " + r.label, unit: "CPU-s/GB",
				get: xferGet(dir.pick, cpuPerGB(r.role))}
			if r.role == roleClient {
				d.floor = &bound{ratio: true, atMost: true, v: 1.2, text: "≤ 1.2×"}
				d.goal = &bound{ratio: true, atMost: true, v: 1.0, text: "≤ 1.0×"}
			}
			defs = append(defs, d)
		}
	}
	return defs
}
