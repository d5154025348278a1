package dataplane

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"
)

func format(v *float64, unit string) string {
	if v == nil {
		return "—"
	}
	switch unit {
	case "Gbit/s", "CPU-s/GB":
		return fmt.Sprintf("%.2f", *v)
	case "%":
		return fmt.Sprintf("%.3f", *v)
	case "MB":
		return fmt.Sprintf("%.1f", *v)
	case "pkts":
		if *v != math.Trunc(*v) { // a median of an even count
			return fmt.Sprintf("%.1f", *v)
		}
		return fmt.Sprintf("%.0f", *v)
	case "×":
		return fmt.Sprintf("%.2f×", *v)
	default:
		return fmt.Sprintf("%.0f", *v)
	}
}

// print writes the header, the table and the notes.
func (r *report) print(w io.Writer) {
	c := r.Config
	fmt.Fprintf(w, "Warren data-plane bench, %s, %d run(s), medians; took %s\n", r.Started.Format(time.RFC3339), c.Runs, r.Duration)
	fmt.Fprintf(w, "machine:  %s, %d cores, kernel %s (TCP congestion control %s), %s; CPU %.0f%% busy before the start\n",
		r.Machine.CPU, r.Machine.Cores, r.Machine.Kernel, r.Machine.TCPCongestion, r.Machine.Go, r.Machine.BusyStartPct)
	fmt.Fprintf(w, "versions: warren %s; wireguard-go %s; gvisor %s\n", r.Versions.Warren, r.Versions.WireGuardGo, r.Versions.GVisor)
	fmt.Fprintf(w, "paths:    veth    iperf3 over a bare veth between two namespaces\n")
	fmt.Fprintf(w, "          wg-go   stock wireguard-go TUN↔TUN over that veth, MTU %d (Warren's, not wireguard-go's 1420)\n", c.MTU)
	fmt.Fprintf(w, "          relay   laptop daemon → home NAT → coordinator relay → site NAT → connector (gVisor) → lanhost, MTU %d;\n", c.MTU)
	fmt.Fprintf(w, "                  both nodes --relay-only (JSON key \"warren\")\n")
	if r.DirectMissing != "" {
		fmt.Fprintf(w, "          direct  MISSING, no figures: %s\n", oneLine(r.DirectMissing, 300))
	} else {
		fmt.Fprintf(w, "          direct  a second lab, Warren's default: laptop daemon → home NAT → site NAT → connector (gVisor) → lanhost,\n")
		fmt.Fprintf(w, "                  punched through both NATs; each run waits for warren status to show it (%s)\n", routeVia(r.DirectStatus))
	}
	switch {
	case r.PolicyMissing != "":
		fmt.Fprintf(w, "          policy  MISSING, no figures: %s\n", oneLine(r.PolicyMissing, 300))
	case r.Policy != nil:
		fmt.Fprintf(w, "          policy  the direct path with a generated %d-rule access policy loaded around its upload, download and\n", r.Policy.Rules)
		fmt.Fprintf(w, "                  TCP connects (see below)\n")
	}
	fmt.Fprintf(w, "method:   iperf3 -t %d -O %d -J; %d TCP connects and %d 1-byte round trips after %d warm-up, from a Go client\n\n",
		c.Seconds, c.Omit, c.Connects, c.RoundTrips, c.Warmup)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tunit\tveth\twg-go\trelay\tdirect\trelay÷wg-go\tdirect÷wg-go\tfloor\tgoal\tverdict relay ⁴\tverdict direct ⁴")
	for _, f := range r.Figures {
		unit := f.Unit
		if unit == "×" { // the values say it
			unit = ""
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Label, unit,
			format(f.Veth, f.Unit), format(f.WGGo, f.Unit), format(f.Warren, f.Unit), format(f.Direct, f.Unit),
			format(f.Ratio, "×"), format(f.DirectRatio, "×"), f.Floor, f.Goal, f.Verdict, f.DirectVerdict)
	}
	tw.Flush()

	fmt.Fprintln(w)
	fmt.Fprintln(w, "¹ retransmits: 100 × RetransSegs / OutSegs in the iperf3 sender's namespace. For Warren's download the")
	fmt.Fprintln(w, "  sender is lanhost → connector (the LAN leg); gVisor's own retransmits towards the laptop are not in any")
	fmt.Fprintln(w, "  kernel counter. Out-of-order at receiver (100 × TCPOFOQueue / InSegs at the laptop) shows loss on that leg.")
	fmt.Fprintln(w, "² client side: wireguard-go in the iperf3 client's namespace / warren daemon; server side: wireguard-go")
	fmt.Fprintln(w, "  in the server's namespace / warren connector; relay: the warren coordinator (on the direct path it only")
	fmt.Fprintln(w, "  carries the CALLs that start the path). GB = 10^9 payload bytes.")
	fmt.Fprintln(w, "³ per run, summed over the path's namespaces (wg-go: both ends; relay and direct: laptop, coord, conn,")
	fmt.Fprintln(w, "  lanhost); a TUN drop is a packet the kernel queued for the tunnel process and discarded (warren0 on the laptop).")
	fmt.Fprintln(w, "⁴ the floors and goals are on Warren's path: \"verdict relay\" judges the relay path, as before the direct")
	fmt.Fprintln(w, "  path existed; \"verdict direct\" judges the same bounds on the direct path, the default where both NATs allow")
	fmt.Fprintln(w, "  it. relay ÷ direct: each run's relay Gbit/s ÷ the same run's direct Gbit/s, median per direction; the")
	fmt.Fprintln(w, "  floor and goal (T5, both directions) judge the worse of the two medians.")
	fmt.Fprintln(w, "⁵ the direct path with the access policy loaded ÷ the same path without one: each run's figure ÷ the same run's,")
	fmt.Fprintln(w, "  median; the goal (within 5 %) is shown, not asserted.")
	if up := r.figure("upload_gbps"); up != nil && up.Veth != nil && up.WGGo != nil && *up.Veth != 0 {
		fmt.Fprintf(w, "stock wireguard-go ÷ veth, upload: %.3f\n", *up.WGGo / *up.Veth)
	}
	r.printRunRatios(w)
	r.printPolicy(w)
	r.printNaive(w)
	r.printExtras(w)
	if len(r.Memory) > 0 {
		fmt.Fprintln(w, "\nmemory (MB):")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  process\tidle RSS\tend RSS\tpeak RSS (VmHWM)")
		for _, m := range r.Memory {
			if m.Error != "" {
				fmt.Fprintf(tw, "  %s\t%s\n", m.Process, m.Error)
				continue
			}
			fmt.Fprintf(tw, "  %s\t%.1f\t%.1f\t%.1f\n", m.Process, m.IdleMB, m.EndMB, m.PeakMB)
		}
		tw.Flush()
	}
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note:", n)
	}
	if len(r.Errors) > 0 {
		fmt.Fprintf(w, "\n%d figure(s) failed (left out of the medians):\n", len(r.Errors))
		for _, e := range r.Errors {
			fmt.Fprintln(w, "  "+e)
		}
	}
	fmt.Fprintf(w, "\nWarren logged %d warning or error line(s)", r.WarrenLog.Count)
	if len(r.WarrenLog.Lines) == 0 {
		fmt.Fprintln(w, ".")
		return
	}
	fmt.Fprintln(w, "; the first:")
	for _, l := range r.WarrenLog.Lines {
		fmt.Fprintf(w, "  %s: %s\n", l.Process, l.Line)
	}
}

// naiveRows are the figures the naive-connector table shows.
var naiveRows = []string{"upload_gbps", "download_gbps", "upload_parallel_gbps", "upload_retrans_pct", "download_retrans_pct",
	"connect_p50_us", "connect_p99_us", "rtt_p50_us", "rtt_p99_us",
	"upload_cpu_s_per_gb_server", "download_cpu_s_per_gb_server", "peak_rss_mb_server"}

// printNaive writes the comparison with the naive connector, the third
// anchor: the same job as Warren's connector, built the obvious way.
func (r *report) printNaive(w io.Writer) {
	if r.NaiveMissing != "" {
		fmt.Fprintf(w, "\nnaive connector: MISSING, no figures: %s\n", oneLine(r.NaiveMissing, 300))
		return
	}
	fmt.Fprintln(w, "\nnaive connector (stock wireguard-go's tun/netstack + io.Copy to a real socket, in the anchor pair's b, forwarding")
	fmt.Fprintln(w, "to iperf3 and the echo server in a third namespace c), against Warren's connector; ratios are same-run medians:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  figure\tunit\tnaive\trelay\tdirect\trelay÷naive\tdirect÷naive")
	for _, key := range naiveRows {
		f := r.figure(key)
		if f == nil {
			continue
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", strings.TrimRight(f.Label, " ¹²³⁴"), f.Unit,
			format(f.Naive, f.Unit), format(f.Warren, f.Unit), format(f.Direct, f.Unit),
			format(f.RelayToNaive, "×"), format(f.DirectToNaive, "×"))
	}
	tw.Flush()
}

// printExtras writes the figures taken once, each with its bound from
// perf-anchors §7 and whether it is met.
func (r *report) printExtras(w io.Writer) {
	x := r.Extras
	if x == nil {
		return
	}
	name := map[string]string{"warren": "relay", "direct": "direct"}[x.Path]
	fmt.Fprintf(w, "\nonce, after the runs, on the %s path (single measurements, perf-anchors §7):\n", name)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  figure\tvalue\tfloor\tgoal\tverdict")
	row := func(label, value, floor, goal string, floorOK, goalOK bool) {
		v := "MISSES floor"
		switch {
		case floorOK && goalOK && goal != "":
			v = "meets goal"
		case floorOK:
			v = "meets floor"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", label, value, floor, goal, v)
	}
	if f := x.Flows; f != nil {
		ratio := "—"
		ok := false
		if f.RatioToOne != nil {
			ratio, ok = fmt.Sprintf("%.2f×", *f.RatioToOne), *f.RatioToOne >= 0.9
		}
		row(fmt.Sprintf("T6 upload, %d flows, ÷ 1 stream", f.Streams), fmt.Sprintf("%s (%.2f Gbit/s)", ratio, f.GbitPerSecond), "≥ 0.9×", "", ok, false)
		row("T6 Jain fairness over the flows", fmt.Sprintf("%.3f", f.Jain), "≥ 0.9", "", f.Jain >= 0.9, false)
	}
	if u := x.UDP; u != nil {
		row(fmt.Sprintf("T7 UDP upload -b %s -l %s, lost", extraUDPRate, extraUDPLen), fmt.Sprintf("%.3f %% (%.2f Gbit/s)", u.LostPct, u.GbitPerSecond),
			"≤ 1 %", "≤ 0.1 %", u.LostPct <= 1, u.LostPct <= 0.1)
	}
	for _, l := range x.Loss {
		loss := fmt.Sprintf("%d %% of GSO batches lost", extraLossPct)
		if l.PerDatagram {
			loss = fmt.Sprintf("%d %% of datagrams lost", extraLossPct)
		}
		row(fmt.Sprintf("T8 %s, %s: stalled seconds", l.Direction, loss),
			fmt.Sprintf("%d of %d", l.StalledSeconds, len(l.IntervalsGbps)), "0", "", l.StalledSeconds == 0, false)
		ratio, ok := "—", false
		if l.RatioLossless != nil {
			ratio, ok = fmt.Sprintf("%.2f×", *l.RatioLossless), *l.RatioLossless >= 0.3
		}
		row(fmt.Sprintf("T8 %s, %s ÷ lossless", l.Direction, loss), fmt.Sprintf("%s (%.2f of %.2f Gbit/s)", ratio, l.GbitPerSecond, l.LosslessGbps),
			"", "≥ 0.3×", true, ok)
	}
	if l := x.Refused; l != nil && l.N > 0 {
		row("L3 connect to a closed port, refused p99", fmt.Sprintf("%.0f µs (%d not refused)", l.P99us, l.Failures), "≤ 5 ms", "",
			l.P99us <= 5000 && l.Failures == 0, false)
	}
	if u := x.Unreach; u != nil {
		secs := float64(u.FailedAfterNs) / 1e9
		row("L3 connect to a missing LAN host, fails after", fmt.Sprintf("%.1f s (%s)", secs, oneLine(u.Error, 60)), "≤ 10 s", "",
			secs <= 10 && u.Error != "connected", false)
		row("L3 meanwhile, connects to lanhost", fmt.Sprintf("%d, p99 %.0f µs, %d failed", u.During.N, u.During.P99us, u.During.Failures),
			"none fail", "", u.During.N > 0 && u.During.Failures == 0, false)
	}
	if rt := x.Rate; rt != nil {
		row(fmt.Sprintf("L6 new connections per second (%d loops)", extraRateWorkers), fmt.Sprintf("%.0f (%d failed)", rt.PerSecond, rt.Failures),
			"≥ 1,000, none fail", "≥ 3,000", rt.PerSecond >= 1000 && rt.Failures == 0, rt.PerSecond >= 3000)
	}
	if id := x.Idle; id != nil {
		row(fmt.Sprintf("L7 %d idle flows: connector RSS per flow", extraIdleFlows), fmt.Sprintf("%.1f KiB (%d held, %d failed)", id.KiBPerFlow, id.Flows, id.Failures),
			"≤ 64 KiB", "≤ 32 KiB", id.KiBPerFlow <= 64 && id.Failures == 0, id.KiBPerFlow <= 32)
		row("L7 meanwhile, connect p99", fmt.Sprintf("%.0f µs (%d failed)", id.Connect.P99us, id.Connect.Failures), "≤ 5 ms", "",
			id.Connect.N > 0 && id.Connect.P99us <= 5000 && id.Connect.Failures == 0, false)
	}
	if len(x.Cold) > 0 {
		var worstTotal, worstFirst float64
		var totals []string
		for _, c := range x.Cold {
			worstTotal, worstFirst = max(worstTotal, c.TotalMs()), max(worstFirst, c.FirstConnectUs)
			totals = append(totals, fmt.Sprintf("%.0f", c.TotalMs()))
		}
		row("L5 warren up (enrolled) → first connection, worst", fmt.Sprintf("%.0f ms (%s)", worstTotal, strings.Join(totals, ", ")),
			"≤ 2 s", "≤ 1 s", worstTotal <= 2000, worstTotal <= 1000)
		row("L4 first connect on the fresh tunnel, worst", fmt.Sprintf("%.1f ms", worstFirst/1e3), "≤ 20 ms", "≤ 10 ms",
			worstFirst <= 20e3, worstFirst <= 10e3)
	}
	tw.Flush()
	for _, e := range x.Errors {
		fmt.Fprintln(w, "  failed:", e)
	}
}

// oneLine joins s's lines and shortens it to n characters.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}

// printRunRatios prints the same-run throughput ratios to stock
// wireguard-go run by run: the spread behind each median.
func (r *report) printRunRatios(w io.Writer) {
	for _, p := range []struct {
		name string
		get  func(*runResult) *pathResult
	}{{"relay", func(run *runResult) *pathResult { return &run.Warren }}, {"direct", func(run *runResult) *pathResult { return &run.Direct }}} {
		var dirs []string
		for _, d := range []struct {
			name string
			get  func(*pathResult) *transfer
		}{{"upload", func(pr *pathResult) *transfer { return pr.Upload }}, {"download", func(pr *pathResult) *transfer { return pr.Download }}} {
			var ratios []string
			for i := range r.Runs {
				x, stock := d.get(p.get(&r.Runs[i])), d.get(&r.Runs[i].WGGo)
				if x != nil && stock != nil && stock.GbitPerSecond != 0 {
					ratios = append(ratios, fmt.Sprintf("%.2f", x.GbitPerSecond/stock.GbitPerSecond))
				}
			}
			if len(ratios) > 0 {
				dirs = append(dirs, d.name+" "+strings.Join(ratios, " "))
			}
		}
		if len(dirs) > 0 {
			fmt.Fprintf(w, "%s ÷ wg-go, run by run: %s\n", p.name, strings.Join(dirs, "; "))
		}
	}
}

// policyRows are the figures the access-policy table shows.
var policyRows = []string{"upload_gbps", "download_gbps", "connect_p50_us", "connect_p99_us"}

// printPolicy writes the policy path's figures against the direct path's
// of the same runs, the goal on each ratio, the ratios run by run, and
// how long the connector took to apply each set and reset.
func (r *report) printPolicy(w io.Writer) {
	if r.PolicyMissing != "" {
		fmt.Fprintf(w, "\naccess policy: MISSING, no figures: %s\n", oneLine(r.PolicyMissing, 300))
		return
	}
	p := r.Policy
	if p == nil {
		return
	}
	fmt.Fprintf(w, "\naccess policy (the policy path): the direct path with a generated %d-rule document loaded, set before each\n", p.Rules)
	fmt.Fprintf(w, "of these figures (warren policy set) and reset after: %d groups, %d users, %d hosts, %d bytes. The laptop's user,\n",
		p.Groups, p.Users, len(p.Hosts), p.Bytes)
	fmt.Fprintf(w, "%s, reaches lanhost's iperf3 and echo ports by rule %d only.\n", p.User, p.AllowRule)
	var in, out []float64
	for _, l := range p.Loads {
		if l.InForceMs > 0 {
			in = append(in, l.InForceMs)
		}
		if l.ClearedMs > 0 {
			out = append(out, l.ClearedMs)
		}
	}
	switch {
	case !p.Enforced:
		fmt.Fprintf(w, "NOT ENFORCED: with the document set, the connector let a connect through to lanhost:%d, which no rule allows:\n", policyProbePort)
		fmt.Fprintln(w, "these are the figures of a loaded, unenforced policy.")
	case len(in) > 0 && len(out) > 0:
		fmt.Fprintf(w, "In force %.0f ms after policy set began (median of %d loads), allow-all again %.0f ms after policy reset\n",
			median(in), len(in), median(out))
		fmt.Fprintf(w, "(a connect to lanhost:%d, which no rule allows, refused, then accepted).\n", policyProbePort)
	}
	fmt.Fprintln(w, "Same-run ratios; the goal (issue 15: within 5 % of no policy) is shown, not asserted:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  figure\tunit\tdirect\tpolicy\tpolicy÷direct\tgoal\tverdict")
	for _, key := range policyRows {
		f := r.figure(key)
		if f == nil {
			continue
		}
		goal, verdict := "", ""
		if row := r.figure(policyVsNone(key)); row != nil {
			goal, verdict = row.Goal, row.DirectVerdict
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", strings.TrimRight(f.Label, " ¹²³⁴⁵"), f.Unit,
			format(f.Direct, f.Unit), format(f.Policy, f.Unit), format(f.PolicyToDirect, "×"), goal, verdict)
	}
	tw.Flush()
	var parts []string
	for _, d := range figureDefs(r.Config.Streams) {
		if d.policy == "" {
			continue
		}
		var ratios []string
		for i := range r.Runs {
			v, okp := d.get(&r.Runs[i].Policy)
			dv, okd := d.get(&r.Runs[i].Direct)
			if okp && okd && dv != 0 {
				ratios = append(ratios, fmt.Sprintf("%.2f", v/dv))
			}
		}
		if len(ratios) > 0 {
			parts = append(parts, d.policy+" "+strings.Join(ratios, " "))
		}
	}
	if len(parts) > 0 {
		fmt.Fprintf(w, "policy ÷ direct, run by run: %s\n", strings.Join(parts, "; "))
	}
}
