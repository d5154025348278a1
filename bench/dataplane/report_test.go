package dataplane

import "time"

// report is everything one benchmark run found; it is written as JSON.
type report struct {
	Started  time.Time `json:"started"`
	Duration string    `json:"duration"`
	Machine  machine   `json:"machine"`
	Versions versions  `json:"versions"`
	Config   config    `json:"config"`
	// WarrenStatus is `warren status` on the relay path's laptop after
	// `warren up`; DirectStatus the same on the direct path's once it
	// showed the direct path, or when the wait for it ended.
	WarrenStatus string `json:"warren_status"`
	DirectStatus string `json:"direct_status,omitempty"`
	// DirectMissing says why the direct path has no figures at all;
	// NaiveMissing the same for the naive connector.
	DirectMissing string `json:"direct_missing,omitempty"`
	NaiveMissing  string `json:"naive_missing,omitempty"`
	// Policy is the access policy the policy path loads (the direct path
	// with a generated document set around each of its figures), and
	// PolicyMissing why that path has no figures when it has none.
	Policy        *policyInfo  `json:"policy,omitempty"`
	PolicyMissing string       `json:"policy_missing,omitempty"`
	Notes         []string     `json:"notes,omitempty"`
	Figures       []figure     `json:"figures"`
	Memory        []procMemory `json:"memory"`
	Runs          []runResult  `json:"runs"`
	// Extras are the figures taken once, after the runs.
	Extras    *extras  `json:"extras,omitempty"`
	Errors    []string `json:"errors,omitempty"`
	WarrenLog struct {
		Count int       `json:"count"` // warning and error lines in all
		Lines []logLine `json:"lines,omitempty"`
	} `json:"warren_log_problems"`
	// WarrenLogs and DirectLogs are the last lines each Warren process
	// of the relay and the direct path printed.
	WarrenLogs map[string]string `json:"warren_logs"`
	DirectLogs map[string]string `json:"direct_logs,omitempty"`
}

// runResult is one run of every figure. Warren is the relay path (the
// key predates the direct path).
type runResult struct {
	Run    int        `json:"run"`
	Veth   pathResult `json:"veth"`
	WGGo   pathResult `json:"wggo"`
	Warren pathResult `json:"warren"`
	Direct pathResult `json:"direct"`
	// Naive is the naive connector's (stock tun/netstack + io.Copy).
	Naive pathResult `json:"naive"`
	// Policy is the direct path's with the access policy loaded: upload,
	// download and TCP connect only.
	Policy pathResult `json:"direct_policy"`
	// Routes are the route's path in `warren status` after each Warren
	// path's figures, by path name ("relay", "direct ADDR:PORT").
	Routes map[string]string `json:"routes_after,omitempty"`
	Errors []string          `json:"errors,omitempty"`
}

// pathResult is one run's figures over one path; nil where not taken or
// failed.
type pathResult struct {
	Upload   *transfer `json:"upload,omitempty"`
	Download *transfer `json:"download,omitempty"`
	Upload8  *transfer `json:"upload_parallel,omitempty"`
	Connect  *latency  `json:"tcp_connect,omitempty"`
	RR       *latency  `json:"rtt_1byte,omitempty"`
	// RRLoaded and RRUpLoaded are RR taken while a download, or an
	// upload, runs on the same path.
	RRLoaded   *latency `json:"rtt_1byte_under_download,omitempty"`
	RRUpLoaded *latency `json:"rtt_1byte_under_upload,omitempty"`
}

// write saves the report as indented JSON, replacing path atomically.
func (r *report) write(path string) error { return writeJSON(path, r) }

type metric struct {
	value float64
	unit  string
}

// metrics are the headline figures for the benchmark line: warren-* is
// the relay path (the names predate the direct path), direct-* the direct
// one.
func (r *report) metrics() []metric {
	var ms []metric
	relay := func(f *figure) *float64 { return f.Warren }
	relayRatio := func(f *figure) *float64 { return f.Ratio }
	direct := func(f *figure) *float64 { return f.Direct }
	directRatio := func(f *figure) *float64 { return f.DirectRatio }
	for _, m := range []struct {
		key, unit string
		pick      func(*figure) *float64
	}{
		{"upload_gbps", "warren-up-Gbit/s", relay},
		{"upload_gbps", "warren-up-x-wggo", relayRatio},
		{"download_gbps", "warren-down-Gbit/s", relay},
		{"download_gbps", "warren-down-x-wggo", relayRatio},
		{"connect_p50_us", "warren-connect-p50-us", relay},
		{"rtt_p50_us", "warren-rtt-p50-us", relay},
		{"peak_rss_mb_client", "daemon-peak-RSS-MB", relay},
		{"upload_gbps", "direct-up-Gbit/s", direct},
		{"upload_gbps", "direct-up-x-wggo", directRatio},
		{"download_gbps", "direct-down-Gbit/s", direct},
		{"download_gbps", "direct-down-x-wggo", directRatio},
		{"connect_p50_us", "direct-connect-p50-us", direct},
		{"rtt_p50_us", "direct-rtt-p50-us", direct},
		{"relay_vs_direct", "relay-x-direct-worse", relay},
		{policyVsNone("upload_gbps"), "policy-up-x-none", direct},
		{policyVsNone("download_gbps"), "policy-down-x-none", direct},
		{policyVsNone("connect_p50_us"), "policy-connect-p50-x-none", direct},
	} {
		if f := r.figure(m.key); f != nil {
			if v := m.pick(f); v != nil {
				ms = append(ms, metric{*v, m.unit})
			}
		}
	}
	return ms
}
