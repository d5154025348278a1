package dataplane

import "fmt"

func ptr(v float64) *float64 { return &v }

func medianPtr(v []float64) *float64 {
	if len(v) == 0 {
		return nil
	}
	return ptr(median(v))
}

// verdict judges a path's value and ratio to wg-go against floor and goal.
func verdict(value, ratio *float64, floor, goal *bound) string {
	if floor == nil {
		return ""
	}
	ok, known := floor.met(value, ratio)
	switch {
	case !known:
		return "no data"
	case !ok:
		return "MISSES floor"
	}
	if goal != nil {
		if ok, _ := goal.met(value, ratio); ok {
			return "meets goal"
		}
	}
	return "meets floor"
}

// summarize fills Figures and Errors from Runs and Memory.
func (r *report) summarize() {
	r.Figures = nil
	for _, d := range figureDefs(r.Config.Streams) {
		f := figure{Key: d.key, Label: d.label, Unit: d.unit}
		var vs, ws, ns, xs, ds, ratios, dratios, nratios, ndratios, ps, pratios []float64
		for i := range r.Runs {
			run := &r.Runs[i]
			if d.policy != "" {
				if v, ok := d.get(&run.Policy); ok {
					ps = append(ps, v)
					if dv, ok := d.get(&run.Direct); ok && dv != 0 {
						pratios = append(pratios, v/dv)
					}
				}
			}
			if d.veth {
				if v, ok := d.get(&run.Veth); ok {
					vs = append(vs, v)
				}
			}
			w, okw := d.get(&run.WGGo)
			if okw {
				ws = append(ws, w)
			}
			n, okn := d.get(&run.Naive)
			if okn {
				ns = append(ns, n)
			}
			for _, p := range []struct {
				pr                  *pathResult
				values, ratios, toN *[]float64
			}{{&run.Warren, &xs, &ratios, &nratios}, {&run.Direct, &ds, &dratios, &ndratios}} {
				x, ok := d.get(p.pr)
				if !ok {
					continue
				}
				*p.values = append(*p.values, x)
				if okw && w != 0 && !d.count {
					*p.ratios = append(*p.ratios, x/w)
				}
				if okn && n != 0 && !d.count {
					*p.toN = append(*p.toN, x/n)
				}
			}
		}
		f.Veth, f.WGGo = medianPtr(vs), medianPtr(ws)
		f.Warren, f.Ratio, f.Runs = medianPtr(xs), medianPtr(ratios), len(xs)
		f.Direct, f.DirectRatio, f.DirectRuns = medianPtr(ds), medianPtr(dratios), len(ds)
		f.Naive, f.RelayToNaive, f.DirectToNaive = medianPtr(ns), medianPtr(nratios), medianPtr(ndratios)
		f.Policy, f.PolicyToDirect, f.PolicyRuns = medianPtr(ps), medianPtr(pratios), len(pratios)
		r.addFigure(f, d.floor, d.goal)
	}
	// Memory, one value per process: idle (after set-up, the laptops
	// with their 10 routes) and peak over the whole benchmark.
	idle, peaks := map[memKey]*float64{}, map[memKey]*float64{}
	for _, m := range r.Memory {
		if m.Error == "" {
			idle[memKey{m.Path, m.Role}], peaks[memKey{m.Path, m.Role}] = ptr(m.IdleMB), ptr(m.PeakMB)
		}
	}
	for _, p := range []struct {
		key, role, label string
		values           map[memKey]*float64
		floor, goal      *bound
	}{
		{"idle_rss_mb_client", roleClient, "idle RSS, client side, 10 routes ²", idle, &bound{atMost: true, v: 40, text: "≤ 40 MB"}, &bound{atMost: true, v: 25, text: "≤ 25 MB"}},
		{"peak_rss_mb_client", roleClient, "peak RSS, client side ²", peaks, &bound{atMost: true, v: 150, text: "≤ 150 MB"}, nil},
		{"peak_rss_mb_server", roleServer, "peak RSS, server side ²", peaks, &bound{atMost: true, v: 256, text: "≤ 256 MB"}, nil},
		{"peak_rss_mb_relay", roleRelay, "peak RSS, relay", peaks, nil, nil},
	} {
		f := figure{Key: p.key, Label: p.label, Unit: "MB", WGGo: p.values[memKey{"wggo", p.role}],
			Warren: p.values[memKey{"warren", p.role}], Direct: p.values[memKey{"direct", p.role}], Naive: p.values[memKey{"naive", p.role}]}
		if f.Warren != nil {
			f.Runs = 1
		}
		if f.Direct != nil {
			f.DirectRuns = 1
		}
		if f.WGGo != nil && *f.WGGo != 0 {
			if f.Warren != nil {
				f.Ratio = ptr(*f.Warren / *f.WGGo)
			}
			if f.Direct != nil {
				f.DirectRatio = ptr(*f.Direct / *f.WGGo)
			}
		}
		r.addFigure(f, p.floor, p.goal)
	}
	r.addRelayVsDirect()
	r.addPolicyVsNone()
	r.Errors = nil
	for _, run := range r.Runs {
		r.Errors = append(r.Errors, run.Errors...)
	}
}

// addFigure appends f with its floor, goal and the verdicts on both
// Warren paths.
func (r *report) addFigure(f figure, floor, goal *bound) {
	if floor != nil {
		f.Floor = floor.text
	}
	if goal != nil {
		f.Goal = goal.text
	}
	f.Verdict = verdict(f.Warren, f.Ratio, floor, goal)
	f.DirectVerdict = verdict(f.Direct, f.DirectRatio, floor, goal)
	r.Figures = append(r.Figures, f)
}

// addRelayVsDirect appends the relay ÷ direct rows: per direction, the
// median of each run's relay Gbit/s ÷ that run's direct Gbit/s, and the
// worse (smaller) of the two, which the floor and goal judge (T5: "both
// directions").
func (r *report) addRelayVsDirect() {
	worse := figure{Key: "relay_vs_direct", Label: "relay ÷ direct, worse of up and down ⁴", Unit: "×"}
	for i, dir := range []struct {
		name string
		get  func(*pathResult) (float64, bool)
	}{{"upload", xferGet(upload, gbps)}, {"download", xferGet(download, gbps)}} {
		var ratios []float64
		for j := range r.Runs {
			x, okx := dir.get(&r.Runs[j].Warren)
			d, okd := dir.get(&r.Runs[j].Direct)
			if okx && okd && d != 0 {
				ratios = append(ratios, x/d)
			}
		}
		f := figure{Key: "relay_vs_direct_" + dir.name, Label: "relay ÷ direct, " + dir.name + " ⁴", Unit: "×",
			Warren: medianPtr(ratios), Runs: len(ratios)}
		r.Figures = append(r.Figures, f)
		switch {
		case i == 0:
			worse.Warren, worse.Runs = f.Warren, f.Runs
		case worse.Warren == nil || f.Warren == nil:
			worse.Warren, worse.Runs = nil, 0
		default:
			worse.Warren, worse.Runs = ptr(min(*worse.Warren, *f.Warren)), min(worse.Runs, f.Runs)
		}
	}
	r.addFigure(worse, relayVsDirectFloor, relayVsDirectGoal)
	// The row judges the relay against the direct path: the direct
	// column has nothing of its own to judge.
	last := &r.Figures[len(r.Figures)-1]
	last.DirectVerdict = ""
	if last.Warren == nil && r.DirectMissing != "" {
		last.Verdict = "no data: no direct path"
	}
}

// policyVsNone is the key of the policy ÷ none row of the figure key.
func policyVsNone(key string) string { return "policy_vs_none_" + key }

// addPolicyVsNone appends a row for each figure with a goal on the
// access policy's cost: in the direct column, the median of each run's
// policy figure ÷ that run's direct one, and whether it meets the goal.
// The goal is shown, not asserted: the bench judges, never fails.
func (r *report) addPolicyVsNone() {
	for _, d := range figureDefs(r.Config.Streams) {
		if d.policyGoal == nil {
			continue
		}
		base := r.figure(d.key)
		f := figure{Key: policyVsNone(d.key), Label: fmt.Sprintf("%d-rule policy ÷ none, %s ⁵", policyRules, d.policy), Unit: "×",
			Direct: base.PolicyToDirect, DirectRuns: base.PolicyRuns, Goal: d.policyGoal.text}
		switch {
		case f.Direct == nil && r.PolicyMissing != "":
			f.DirectVerdict = "no data: no policy path"
		case r.Policy != nil && !r.Policy.Enforced:
			// The figures are of a document set but not applied.
			f.DirectVerdict = "no data: not enforced"
		default:
			f.DirectVerdict = policyVerdict(f.Direct, d.policyGoal)
		}
		r.Figures = append(r.Figures, f)
	}
}

// policyVerdict says whether a policy ÷ none ratio meets its goal.
func policyVerdict(ratio *float64, goal *bound) string {
	ok, known := goal.met(ratio, nil)
	switch {
	case !known:
		return "no data"
	case ok:
		return "meets goal"
	default:
		return "misses goal"
	}
}

func (r *report) figure(key string) *figure {
	for i := range r.Figures {
		if r.Figures[i].Key == key {
			return &r.Figures[i]
		}
	}
	return nil
}
