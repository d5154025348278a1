package dataplane

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/warrennet/warren/test/netlab"
)

// The policy path is the direct path with an access policy loaded: the
// same lab and processes, with a generated document of policyRules rules
// (policydoc_test.go) set by `warren policy set` just before each of its
// figures and removed by `warren policy reset` just after, so that its
// figures and the direct path's are taken seconds apart, as every other
// path's are (the issue: "the connector's connect p50 and throughput with
// a 200-rule policy loaded: within 5 % of no policy").

// policyRules is the size of the document the policy path loads.
const policyRules = 200

// policyProbePort is where a second echo server listens on the direct
// lab's lanhost. No rule lets anyone reach it, so a connect to it is
// refused while the connector enforces the document and accepted once it
// is reset: the bench's check that a figure runs under the policy, and
// after it without.
const policyProbePort = 7008

// policyWait bounds each wait for the connector to apply a set or a
// reset; policyProbeEvery is how often it probes meanwhile.
const (
	policyWait       = 5 * time.Second
	policyProbeEvery = 20 * time.Millisecond
)

// siteLAN is the prefix netlab routes to the connector (DeployWarren).
var siteLAN = netip.PrefixFrom(netip.MustParseAddr(netlab.SiteLANGW), 24).Masked()

// policyRouted are the prefixes routed to the direct lab's connector
// while the policy is loaded: the site LAN and the idle routes.
func policyRouted(site netip.Prefix) []netip.Prefix {
	return append([]netip.Prefix{site}, idlePrefixes()...)
}

// policyInfo is what the report says of the policy path's document and
// of each time it was loaded.
type policyInfo struct {
	Rules  int `json:"rules"`
	Groups int `json:"groups"`
	Users  int `json:"users"`
	// Hosts were declared with `warren hosts add` for the rules.
	Hosts []namedHost `json:"hosts"`
	// User is the laptop's; AllowRule the one rule that lets it reach
	// iperf3 and the echo server on lanhost.
	User      string `json:"user"`
	AllowRule int    `json:"allow_rule"`
	Bytes     int    `json:"bytes"`
	SHA256    string `json:"sha256"`
	Document  string `json:"document"`
	// Enforced is whether the connector refused the probe port while the
	// document was set, when it was first loaded. When it did not, the
	// figures are of a loaded but unenforced document, and the loads do
	// not wait for the connector.
	Enforced bool `json:"enforced"`
	// Loads are the times the document was set and reset around figures.
	Loads []policyLoadTiming `json:"loads,omitempty"`
}

// policyLoadTiming is one load of the document around a figure: how long
// `policy set` took, and from its start until the probe was refused; the
// same for the reset, until the probe connected again.
type policyLoadTiming struct {
	Run       int     `json:"run"`
	Figure    string  `json:"figure"`
	SetMs     float64 `json:"set_ms"`
	InForceMs float64 `json:"in_force_ms,omitempty"`
	ResetMs   float64 `json:"reset_ms"`
	ClearedMs float64 `json:"cleared_ms,omitempty"`
}

// policyLoad sets and resets the document on a deployment.
type policyLoad struct {
	h    *harness
	d    *warrenDeployment
	file string
	info *policyInfo
}

// policyPath returns the policy path, the direct path with the document
// loaded around each of its figures, and what loads it. When there is
// none (no direct path, or the document could not be loaded), it
// returns no path and says why in rep: the other paths are still
// measured. It returns an error only when ctx ends.
func (h *harness) policyPath(ctx context.Context, direct *path, rep *report) (*path, *policyLoad, error) {
	if direct == nil {
		rep.PolicyMissing = "no direct path"
		return nil, nil, nil
	}
	h.progress("policy path: the direct path with a generated %d-rule access policy loaded around each of its figures", policyRules)
	pl, missing, err := h.setupPolicy(ctx, h.direct)
	if err != nil {
		return nil, nil, err
	}
	if missing != "" {
		rep.PolicyMissing = missing
		h.progress("policy path MISSING, its figures are left out: %s", oneLine(missing, 500))
		return nil, nil, nil
	}
	rep.Policy = pl.info
	if !pl.info.Enforced {
		n := fmt.Sprintf("policy path: with the policy set the connector let a connect to %s:%d through, which no rule allows: "+
			"its figures are of a loaded but unenforced policy", netlab.LANHostIP, policyProbePort)
		rep.Notes = append(rep.Notes, n)
		h.progress("  warning: %s", n)
	}
	p := *direct
	p.name = "policy"
	return &p, pl, nil
}

// setupPolicy generates the document for the direct deployment d,
// declares its hosts, starts the probe's echo server, and loads and
// resets it once to see whether the connector enforces it. When it
// cannot, it returns why, not an error: the other paths are still
// measured. It returns an error only when ctx ends.
func (h *harness) setupPolicy(ctx context.Context, d *warrenDeployment) (pl *policyLoad, missing string, err error) {
	defer func() {
		if missing != "" && ctx.Err() != nil {
			pl, missing, err = nil, "", ctx.Err()
		}
	}()
	bp, err := policyDocument(policySpec{
		Rules:  policyRules,
		User:   benchUser,
		Target: netip.MustParseAddr(netlab.LANHostIP),
		Ports:  []uint16{iperfPort, mustPort(echoPort)},
		Probe:  policyProbePort,
		Routed: policyRouted(siteLAN),
	})
	if err != nil {
		return nil, fmt.Sprintf("generating the document: %v", err), nil
	}
	sum := sha256.Sum256(bp.Text)
	info := &policyInfo{Rules: policyRules, Groups: bp.Groups, Users: bp.Users, Hosts: bp.Hosts, User: benchUser, AllowRule: bp.Rule,
		Bytes: len(bp.Text), SHA256: hex.EncodeToString(sum[:]), Document: string(bp.Text)}
	pl = &policyLoad{h: h, d: d, file: filepath.Join(h.dir, "policy.json"), info: info}
	if err := os.WriteFile(pl.file, bp.Text, 0o644); err != nil {
		return nil, err.Error(), nil
	}
	for _, host := range bp.Hosts {
		if _, err := d.admin(ctx, "hosts", "add", host.Name, host.Addr.String(), "--comment", "bench: access policy"); err != nil {
			return nil, fmt.Sprintf("warren hosts add %s: %v", host.Name, err), nil
		}
	}
	if err := h.startEcho(ctx, d.lab.NS(netlab.LANHost), strconv.Itoa(policyProbePort)); err != nil {
		return nil, fmt.Sprintf("the probe's echo server: %v", err), nil
	}
	// Before the document, the probe connects: what it checks is the
	// policy's doing.
	if denied, err := pl.probe(ctx); err != nil || denied {
		return nil, fmt.Sprintf("the probe %s:%d without a policy: refused %v, %v", netlab.LANHostIP, policyProbePort, denied, err), nil
	}
	info.Enforced = true // wait for it, this once
	t, err := pl.set(ctx)
	if errors.Is(err, errNotInForce) {
		info.Enforced = false
	} else if err != nil {
		return nil, err.Error(), nil
	}
	if _, err := pl.reset(ctx); err != nil {
		return nil, err.Error(), nil
	}
	if info.Enforced {
		h.progress("access policy: %d rules, %d groups, %d users, %d hosts; the laptop reaches lanhost's iperf3 and echo ports by rule %d; in force %.0f ms after policy set",
			policyRules, bp.Groups, bp.Users, len(bp.Hosts), bp.Rule, t.InForceMs)
	}
	return pl, "", nil
}

func mustPort(s string) uint16 {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		panic(err)
	}
	return uint16(n)
}

// errNotInForce is set's error when the connector did not refuse the
// probe with the document set.
var errNotInForce = errors.New("the policy is not in force at the connector")

// set loads the document and, when the connector enforces documents,
// waits until the probe is refused (else errNotInForce). It returns the
// timings so far.
func (pl *policyLoad) set(ctx context.Context) (policyLoadTiming, error) {
	var t policyLoadTiming
	start := time.Now()
	out, err := pl.d.admin(ctx, "policy", "set", pl.file)
	t.SetMs = ms(time.Since(start))
	if err != nil {
		return t, fmt.Errorf("warren policy set: %w: %s", err, oneLine(out, 300))
	}
	if !pl.info.Enforced {
		return t, nil
	}
	if err := pl.waitProbe(ctx, true); err != nil {
		if ctx.Err() != nil {
			return t, ctx.Err()
		}
		return t, fmt.Errorf("%w: a connect to %s:%d, which no rule allows: %v", errNotInForce, netlab.LANHostIP, policyProbePort, err)
	}
	t.InForceMs = ms(time.Since(start))
	return t, nil
}

// reset removes the document and, when the connector enforces it, waits
// until the probe connects again.
func (pl *policyLoad) reset(ctx context.Context) (policyLoadTiming, error) {
	var t policyLoadTiming
	start := time.Now()
	out, err := pl.d.admin(ctx, "policy", "reset")
	t.ResetMs = ms(time.Since(start))
	if err != nil {
		return t, fmt.Errorf("warren policy reset: %w: %s", err, oneLine(out, 300))
	}
	if !pl.info.Enforced {
		return t, nil
	}
	if err := pl.waitProbe(ctx, false); err != nil {
		return t, fmt.Errorf("after warren policy reset, the probe %s:%d: %w", netlab.LANHostIP, policyProbePort, err)
	}
	t.ClearedMs = ms(time.Since(start))
	return t, nil
}

// around returns figure do taken with the document loaded: set before,
// reset after, the timings kept in the report. When the document is not
// in force, the figure is not taken. A figure taken is kept even when the
// reset after it fails; the error says so.
func (pl *policyLoad) around(ctx context.Context, run int, figure string, do func(*path, *pathResult) (string, error)) func(*path, *pathResult) (string, error) {
	return func(p *path, into *pathResult) (string, error) {
		t, err := pl.set(ctx)
		if err != nil {
			if _, rerr := pl.reset(ctx); rerr != nil {
				err = errors.Join(err, rerr)
			}
			return "", err
		}
		msg, err := do(p, into)
		r, rerr := pl.reset(ctx)
		t.Run, t.Figure, t.ResetMs, t.ClearedMs = run, figure, r.ResetMs, r.ClearedMs
		pl.info.Loads = append(pl.info.Loads, t)
		if t.InForceMs > 0 {
			msg += fmt.Sprintf(" (in force %.0f ms after set)", t.InForceMs)
		}
		if rerr != nil {
			err = errors.Join(err, fmt.Errorf("%w (the figure, taken before, is kept)", rerr))
		}
		return msg, err
	}
}

// waitProbe waits up to policyWait for a connect to the probe port to be
// refused (denied) or to connect.
func (pl *policyLoad) waitProbe(ctx context.Context, denied bool) error {
	deadline := time.Now().Add(policyWait)
	for {
		got, err := pl.probe(ctx)
		if err == nil && got == denied {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("refused %v, want %v", got, denied)
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", policyWait, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(policyProbeEvery):
		}
	}
}

// probe connects once from the laptop to the probe port and reports
// whether the connect was refused.
func (pl *policyLoad) probe(ctx context.Context) (refused bool, err error) {
	target := netJoin(netlab.LANHostIP, strconv.Itoa(policyProbePort))
	s, err := runChild(ctx, pl.h.exe, pl.d.lab.NS(netlab.Laptop), modeConnect, target, 1, 0)
	if err != nil {
		return false, err
	}
	return probeRefused(s)
}

// probeRefused reads one connect's samples: connected, refused, or
// neither (an error).
func probeRefused(s samplesOut) (bool, error) {
	switch {
	case len(s.Samples) == 1 && s.Failures == 0:
		return false, nil
	case s.Failures == 1 && strings.Contains(s.FirstError, "connection refused"):
		return true, nil
	case s.Failures > 0:
		return false, errors.New(s.FirstError)
	default:
		return false, fmt.Errorf("%d samples, %d failures from one connect", len(s.Samples), s.Failures)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }
