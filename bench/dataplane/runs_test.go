package dataplane

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// runPath is one path of a run: where its figures go, whether it gets
// the full set (or the upload only), for a Warren path its deployment,
// whose route is checked after the run, and for the policy path the
// access policy loaded around each of its figures (only the figures
// marked policy).
type runPath struct {
	p      *path
	into   *pathResult
	all    bool
	d      *warrenDeployment
	policy *policyLoad
}

// measureRun takes one run's figures. Each figure is taken on every path
// in turn before the next figure, so that a path and stock wireguard-go
// are measured seconds apart, not minutes: on a shared VM the machine's
// speed drifts over minutes, and each Warren figure is read as a ratio to
// stock's of the same run. A direct path is looked for again before each
// of its figures (the path is kept only while in use), and on the policy
// path (the same deployment) too.
func (h *harness) measureRun(ctx context.Context, paths []runPath, rr *runResult) error {
	type figure struct {
		name   string
		all    bool // taken only on paths that get the full set
		policy bool // taken on the policy path too
		do     func(p *path, into *pathResult) (string, error)
	}
	xfer := func(dst func(*pathResult) **transfer, reverse bool, streams int) func(*path, *pathResult) (string, error) {
		return func(p *path, into *pathResult) (string, error) {
			t, err := h.transfer(ctx, p, reverse, streams)
			if err != nil {
				return "", err
			}
			*dst(into) = t
			return fmt.Sprintf("%.2f Gbit/s, retransmits %.3f%%", t.GbitPerSecond, t.RetransPct), nil
		}
	}
	lat := func(dst func(*pathResult) **latency, mode string, n int) func(*path, *pathResult) (string, error) {
		return func(p *path, into *pathResult) (string, error) {
			s, err := runChild(ctx, h.exe, p.clientNS, mode, netJoin(p.target, echoPort), n, h.cfg.Warmup)
			if err != nil {
				return "", err
			}
			l := summarize(s)
			*dst(into) = &l
			if l.N == 0 {
				return "", fmt.Errorf("no samples: %d failures, first: %s", l.Failures, l.FirstError)
			}
			msg := fmt.Sprintf("p50 %.0f µs, p99 %.0f µs", l.P50us, l.P99us)
			if l.Failures > 0 {
				msg += fmt.Sprintf(", %d failures (first: %s)", l.Failures, l.FirstError)
			}
			return msg, nil
		}
	}
	loaded := func(dst func(*pathResult) **latency, reverse bool) func(*path, *pathResult) (string, error) {
		return func(p *path, into *pathResult) (string, error) {
			l, err := h.loadedRTT(ctx, p, reverse)
			if err != nil {
				return "", err
			}
			*dst(into) = l
			return fmt.Sprintf("p50 %.0f µs, p99 %.0f µs", l.P50us, l.P99us), nil
		}
	}
	figures := []figure{
		{"upload", false, true, xfer(func(r *pathResult) **transfer { return &r.Upload }, false, 1)},
		{"download (-R)", true, true, xfer(func(r *pathResult) **transfer { return &r.Download }, true, 1)},
		{fmt.Sprintf("upload -P %d", h.cfg.Streams), true, false, xfer(func(r *pathResult) **transfer { return &r.Upload8 }, false, h.cfg.Streams)},
		{"TCP connect", true, true, lat(func(r *pathResult) **latency { return &r.Connect }, modeConnect, h.cfg.Connects)},
		{"1-byte RTT", true, false, lat(func(r *pathResult) **latency { return &r.RR }, modeRR, h.cfg.RoundTrips)},
		{"RTT, download", true, false, loaded(func(r *pathResult) **latency { return &r.RRLoaded }, true)},
		{"RTT, upload", true, false, loaded(func(r *pathResult) **latency { return &r.RRUpLoaded }, false)},
	}
	for _, f := range figures {
		for _, rp := range paths {
			if f.all && !rp.all || rp.policy != nil && !f.policy {
				continue
			}
			p := rp.p
			if rp.d != nil && rp.d == h.direct {
				if err := h.findDirect(ctx, p.name, rp.d, rr, f.name); err != nil {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					continue
				}
			}
			do := f.do
			if rp.policy != nil {
				do = rp.policy.around(ctx, rr.Run, f.name, f.do)
			}
			msg, err := do(p, rp.into)
			if ctx.Err() != nil {
				return fmt.Errorf("%s %s: %w", p.name, f.name, ctx.Err())
			}
			if err != nil {
				e := fmt.Sprintf("run %d %s %s: %v", rr.Run, p.name, f.name, err)
				rr.Errors = append(rr.Errors, e)
				h.progress("  %-7s %-14s ERROR %v", p.name, f.name, err)
				continue
			}
			h.progress("  %-7s %-14s %s", p.name, f.name, msg)
		}
	}
	return ctx.Err()
}

// findDirect waits for d's direct path before a figure on it (on the
// path named name: direct or policy); when there is none, the figure is
// left out with an error in the run.
func (h *harness) findDirect(ctx context.Context, name string, d *warrenDeployment, rr *runResult, figure string) error {
	start := time.Now()
	via, _, err := d.waitDirect(ctx, directWait)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		e := fmt.Sprintf("run %d %s %s: no direct path, figure left out: %v", rr.Run, name, figure, err)
		rr.Errors = append(rr.Errors, e)
		h.progress("  %-7s %-14s ERROR no direct path: %v", name, figure, err)
		return err
	}
	if waited := time.Since(start); waited > time.Second {
		h.progress("  %-7s %s (waited %v)", name, via, waited.Round(100*time.Millisecond))
	}
	return nil
}

func netJoin(host, port string) string { return host + ":" + port }

// loadedRoundTrips is how many 1-byte round trips loadedRTT times. Under
// load one can take tens of milliseconds, so they are fewer than
// RoundTrips, and the transfer lasts loadedSeconds at most.
const (
	loadedRoundTrips = 200
	loadedSeconds    = 20
)

// loadedRTT times 1-byte round trips on p while a transfer fills the
// same path, a second after it starts: how responsive an ssh session
// stays while a large copy runs. The transfer is a download (iperf3 -R)
// if reverse, else an upload, and is stopped when the round trips are
// done.
func (h *harness) loadedRTT(ctx context.Context, p *path, reverse bool) (*latency, error) {
	srv, err := h.iperfServer(ctx, p)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	dctx, stop := context.WithCancel(ctx)
	defer stop()
	download := make(chan error, 1)
	args := []string{"-c", p.target, "-t", strconv.Itoa(loadedSeconds), "--connect-timeout", "5000"}
	if reverse {
		args = append(args, "-R")
	}
	go func() {
		_, err := nsOutput(dctx, p.clientNS, "iperf3", args...)
		download <- err
	}()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case err := <-download:
		return nil, fmt.Errorf("the transfer ended before the round trips began: %v", err)
	case <-time.After(time.Second):
	}
	s, err := runChild(ctx, h.exe, p.clientNS, modeRR, netJoin(p.target, echoPort), loadedRoundTrips, h.cfg.Warmup)
	select {
	case err := <-download:
		return nil, fmt.Errorf("the transfer ended before the round trips did: %v", err)
	default:
	}
	stop()
	<-download
	if err != nil {
		return nil, err
	}
	l := summarize(s)
	if l.N == 0 {
		return nil, fmt.Errorf("no samples: %d failures, first: %s", l.Failures, l.FirstError)
	}
	return &l, nil
}
