package dataplane

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warrennet/warren/test/netlab"
)

// Settings come from the environment, so that `make bench` passes them
// through (WARREN_BENCH_RUNS=1 make bench for a quick check).
const (
	runsEnv     = "WARREN_BENCH_RUNS"     // runs per figure; the median is reported (default 3)
	secondsEnv  = "WARREN_BENCH_SECONDS"  // iperf3 -t (default 5)
	connectsEnv = "WARREN_BENCH_CONNECTS" // TCP connects per latency run (default 1000)
	rrEnv       = "WARREN_BENCH_RR"       // 1-byte round trips per latency run (default 1000)
	outEnv      = "WARREN_BENCH_OUT"      // the JSON file (default results/latest.json)
)

// config is the benchmark's settings.
type config struct {
	Runs       int    `json:"runs"`
	Seconds    int    `json:"iperf3_seconds"`
	Omit       int    `json:"iperf3_omit_seconds"`
	Streams    int    `json:"parallel_streams"`
	Connects   int    `json:"connects"`
	RoundTrips int    `json:"round_trips"`
	Warmup     int    `json:"latency_warmup"`
	MTU        int    `json:"tunnel_mtu"`
	Out        string `json:"-"`
}

func loadConfig() (config, error) {
	c := config{Runs: 3, Seconds: 5, Omit: 1, Streams: 8, Connects: 1000, RoundTrips: 1000, Warmup: 10, MTU: tunnelMTU, Out: "results/latest.json"}
	var errs []error
	for _, s := range []struct {
		env      string
		v        *int
		min, max int
	}{{runsEnv, &c.Runs, 1, 20}, {secondsEnv, &c.Seconds, 1, 30}, {connectsEnv, &c.Connects, 10, 10000}, {rrEnv, &c.RoundTrips, 10, 100000}} {
		v := os.Getenv(s.env)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < s.min || n > s.max {
			errs = append(errs, fmt.Errorf("%s=%q: want a whole number from %d to %d", s.env, v, s.min, s.max))
			continue
		}
		*s.v = n
	}
	if v := os.Getenv(outEnv); v != "" {
		c.Out = v
	}
	return c, errors.Join(errs...)
}

// tools the benchmark runs, besides the go command.
var tools = []string{"ip", "nft", "iperf3", "wg", "setpriv", "ping", "go"}

// available reports why the benchmark cannot run here, or nil.
func available() error {
	if err := netlab.Available(); err != nil {
		return fmt.Errorf("%w: run it as root (sudo make bench)", err)
	}
	for _, t := range tools {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("%s is not installed (sudo make bench installs it)", t)
		}
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return fmt.Errorf("no /dev/net/tun: %w", err)
	}
	return nil
}

// BenchmarkDataplane runs every figure of the data-plane bench once per
// run (WARREN_BENCH_RUNS, default 3), prints a table of the medians with
// each Warren figure as a ratio to stock wireguard-go, and writes the JSON
// report. It does its own runs: b.N is ignored (make bench uses
// -benchtime 1x).
func BenchmarkDataplane(b *testing.B) {
	if err := available(); err != nil {
		// go test prints a benchmark's skip only with -v: say it here too.
		fmt.Printf("BenchmarkDataplane: skipping the data-plane benchmark: %v\n", err)
		b.Skipf("skipping the data-plane benchmark: %v", err)
	}
	cfg, err := loadConfig()
	if err != nil {
		b.Fatal(err)
	}
	sigCtx, ctx, cancel := runContexts()
	defer cancel()

	h := &harness{cfg: cfg}
	defer h.close()
	rep, err := h.run(ctx)
	if err != nil {
		if sigCtx.Err() != nil && ctx.Err() != context.DeadlineExceeded {
			b.Fatalf("interrupted (everything it started is removed on the way out): %v", err)
		}
		h.dumpLogs(b)
		b.Fatal(err)
	}
	for _, m := range rep.metrics() {
		b.ReportMetric(m.value, m.unit)
	}
}

// runContexts returns the contexts a benchmark runs in: sigCtx ends at
// Ctrl-C or SIGTERM (a second Ctrl-C kills at once), ctx also at the
// budget. The harness's deferred close then removes every namespace and
// process. cancel releases both.
func runContexts() (sigCtx, ctx context.Context, cancel func()) {
	sigCtx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigCtx.Done()
		stop()
	}()
	ctx, cancelBudget := context.WithTimeout(sigCtx, budget())
	return sigCtx, ctx, func() {
		cancelBudget()
		stop()
	}
}

// budget bounds the whole benchmark: 40 minutes, or a minute less than
// go test's -timeout so that cleanup runs before the test binary panics.
func budget() time.Duration {
	d := 40 * time.Minute
	if f := flag.Lookup("test.timeout"); f != nil {
		if g, ok := f.Value.(flag.Getter); ok {
			if t, ok := g.Get().(time.Duration); ok && t > 0 {
				d = min(d, t-time.Minute)
			}
		}
	}
	return max(d, time.Minute)
}

// harness owns everything one benchmark run builds; close removes it.
type harness struct {
	cfg   config
	exe   string // this test binary, re-executed in namespaces
	dir   string
	procs procs
	pair  *pair
	// lab and warren are the relay path (both nodes --relay-only);
	// directLab and direct, a second lab, the direct path.
	lab       *netlab.Lab
	warren    *warrenDeployment
	directLab *netlab.Lab
	direct    *warrenDeployment
	begin     time.Time
}

// directWait bounds each wait for `warren status` to show a direct path.
const directWait = 30 * time.Second

// close stops every process, then deletes the namespaces and files. It
// is safe on a partly built harness.
func (h *harness) close() {
	h.procs.stopAll()
	for _, l := range []*netlab.Lab{h.lab, h.directLab} {
		if l == nil {
			continue
		}
		if err := l.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "dataplane: cleanup:", err)
		}
	}
	if h.pair != nil {
		if err := h.pair.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "dataplane: cleanup:", err)
		}
	}
	if h.dir != "" {
		os.RemoveAll(h.dir)
	}
}

func (h *harness) progress(format string, args ...any) {
	fmt.Printf("dataplane [%5.1fs] %s\n", time.Since(h.begin).Seconds(), fmt.Sprintf(format, args...))
}

// dumpLogs logs the tail of every process's output, for a failed run.
func (h *harness) dumpLogs(b *testing.B) {
	h.procs.mu.Lock()
	defer h.procs.mu.Unlock()
	for _, p := range h.procs.list {
		b.Logf("=== %s ===\n%s", p.name, tail(p.out.String(), 4000))
	}
}

func (h *harness) run(ctx context.Context) (*report, error) {
	h.begin = time.Now()
	rep := &report{Started: h.begin.UTC(), Config: h.cfg, Machine: readMachine()}
	busy, err := cpuBusy(ctx, 2*time.Second)
	if err != nil {
		return nil, err
	}
	rep.Machine.BusyStartPct = 100 * busy
	h.progress("machine: %s, %d cores, kernel %s (TCP congestion control %s), %s; CPU %.0f%% busy before the start (load average %s)",
		rep.Machine.CPU, rep.Machine.Cores, rep.Machine.Kernel, rep.Machine.TCPCongestion, rep.Machine.Go, 100*busy, rep.Machine.LoadStart)
	if busy > 0.10 {
		h.progress("warning: the machine is not idle; figures will be noisy")
		rep.Notes = append(rep.Notes, fmt.Sprintf("machine not idle at start: CPU %.0f%% busy", 100*busy))
	}
	if h.exe, err = os.Executable(); err != nil {
		return nil, err
	}
	if h.dir, err = os.MkdirTemp("", "warren-dataplane-"); err != nil {
		return nil, err
	}
	// The connector runs as nobody and must reach the binary and its state.
	if err := os.Chmod(h.dir, 0o755); err != nil {
		return nil, err
	}
	rep.Versions = readVersions(ctx)

	h.progress("building warren (./cmd/warren) and stock wireguard-go (golang.zx2c4.com/wireguard %s)", rep.Versions.WireGuardGo)
	warrenBin, wgBin := filepath.Join(h.dir, "warren"), filepath.Join(h.dir, "wireguard-go")
	if _, err := run(ctx, "go", "build", "-o", warrenBin, "../../cmd/warren"); err != nil {
		return nil, fmt.Errorf("building warren: %w", err)
	}
	if _, err := run(ctx, "go", "build", "-o", wgBin, "golang.zx2c4.com/wireguard"); err != nil {
		return nil, fmt.Errorf("building wireguard-go: %w", err)
	}

	h.progress("anchor pair: two namespaces joined by a veth; stock wireguard-go over it (MTU %d)", tunnelMTU)
	if h.pair, err = newPair(ctx, &h.procs); err != nil {
		return nil, err
	}
	if err := h.pair.startWireGuard(ctx, wgBin, h.dir); err != nil {
		return nil, fmt.Errorf("stock wireguard-go: %w", err)
	}
	if err := h.startEcho(ctx, h.pair.ns(pairB), echoPort); err != nil {
		return nil, err
	}
	wgPIDs := map[string]int{}
	for role, side := range map[string]string{roleClient: pairA, roleServer: pairB} {
		if wgPIDs[role], err = findPID(ctx, h.pair.ns(side), func(argv []string) bool { return argv[0] == wgBin }); err != nil {
			return nil, fmt.Errorf("finding wireguard-go: %w", err)
		}
	}
	veth := &path{name: "veth", clientNS: h.pair.ns(pairA), serverNS: h.pair.ns(pairB), target: vethB,
		legs: map[string]leg{roleClient: {ns: h.pair.ns(pairA)}, roleServer: {ns: h.pair.ns(pairB)}}}
	wggo := &path{name: "wggo", clientNS: h.pair.ns(pairA), serverNS: h.pair.ns(pairB), target: tunB, pids: wgPIDs,
		legs: map[string]leg{roleClient: {h.pair.ns(pairA), h.pair.ifname(pairA)}, roleServer: {h.pair.ns(pairB), h.pair.ifname(pairB)}}}

	h.progress("naive connector: stock tun/netstack + io.Copy in %s, forwarding to a third namespace", h.pair.ns(pairB))
	naive, missing := h.setupNaive(ctx, wgPIDs[roleClient])
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if missing != "" {
		rep.NaiveMissing = missing
		h.progress("naive connector MISSING, its figures are left out: %s", oneLine(missing, 500))
	}

	h.progress("relay path: netlab topology; coordinator+relay, connector (as nobody) behind the site NAT, laptop daemon, warren up; both --relay-only")
	if h.lab, err = netlab.New(ctx); err != nil {
		return nil, err
	}
	if err := h.startEcho(ctx, h.lab.NS(netlab.LANHost), echoPort); err != nil {
		return nil, err
	}
	if h.warren, err = deployWarren(ctx, h.lab, warrenBin, filepath.Join(h.dir, "relay"), true); err != nil {
		return nil, err
	}
	rep.WarrenStatus = h.warren.Status
	if via := routeVia(h.warren.Status); via != "relay" {
		rep.Notes = append(rep.Notes, fmt.Sprintf("relay path: warren status shows the route via %q, not the relay: check the path", via))
	}
	h.progress("warren up: %s", strings.ReplaceAll(strings.TrimSpace(h.warren.UpOutput), "\n", " | "))
	warren, err := h.warrenPath(ctx, "warren", h.warren, warrenBin)
	if err != nil {
		return nil, err
	}

	h.progress("direct path: a second netlab topology, Warren without --relay-only; waiting up to %v for a direct path", directWait)
	direct, missing, err := h.setupDirect(ctx, warrenBin)
	if err != nil {
		return nil, err
	}
	if missing != "" {
		rep.DirectMissing = missing
		h.progress("direct path MISSING, its figures are left out: %s", oneLine(missing, 500))
	}
	if h.direct != nil {
		rep.DirectStatus = h.direct.Status
	}

	// M1 is the daemon's idle RSS with the tunnel up and 10 routes.
	for _, d := range []*warrenDeployment{h.warren, h.direct} {
		if d == nil {
			continue
		}
		if err := d.addIdleRoutes(ctx); err != nil {
			return nil, err
		}
	}
	h.progress("%d routes on each laptop; letting the processes settle before the idle memory readings", idleRoutes)
	time.Sleep(2 * time.Second)
	idle := readMemories(wggo, naive, warren, direct)

	// The policy path is the direct one with an access policy loaded
	// around each of its figures; set up after the idle readings, which
	// are of Warren without one.
	policy, pl, err := h.policyPath(ctx, direct, rep)
	if err != nil {
		return nil, err
	}

	for r := range h.cfg.Runs {
		rr := runResult{Run: r + 1, Routes: map[string]string{}}
		h.progress("run %d/%d", r+1, h.cfg.Runs)
		paths := []runPath{{p: veth, into: &rr.Veth}, {p: wggo, into: &rr.WGGo, all: true}}
		if naive != nil {
			paths = append(paths, runPath{p: naive, into: &rr.Naive, all: true})
		}
		paths = append(paths, runPath{p: warren, into: &rr.Warren, all: true, d: h.warren})
		if direct != nil {
			paths = append(paths, runPath{p: direct, into: &rr.Direct, all: true, d: h.direct})
		}
		if policy != nil {
			paths = append(paths, runPath{p: policy, into: &rr.Policy, all: true, d: h.direct, policy: pl})
		}
		if err := h.measureRun(ctx, paths, &rr); err != nil {
			return nil, err
		}
		for _, rp := range paths {
			if rp.d != nil && rp.policy == nil { // the policy path's is the direct path's
				rr.Routes[rp.p.name] = h.checkRoute(ctx, rr.Run, rp.p.name, rp.d, rep)
			}
		}
		rep.Runs = append(rep.Runs, rr)
	}

	end := readMemories(wggo, naive, warren, direct)
	rep.Memory = memoryRows(idle, end)

	// The extra figures, once, on Warren's default path: the direct one
	// when it can be found again, else the relay path. After the memory
	// readings, since 10,000 held flows raise the connector's peak.
	xp, xkey, xd := warren, "warren", h.warren
	if direct != nil {
		if _, _, err := h.direct.waitDirect(ctx, directWait); err == nil {
			xp, xkey, xd = direct, "direct", h.direct
		}
	}
	h.progress("extra figures, once, on the %s path", xp.name)
	rep.Extras = h.measureExtras(ctx, xp, xkey, xd, rep)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	rep.WarrenLog.Lines, rep.WarrenLog.Count = h.warren.logProblems(10)
	rep.WarrenLogs = h.warren.logTails(16 << 10)
	if h.direct != nil {
		lines, n := h.direct.logProblems(10)
		for _, l := range lines {
			l.Process += " (direct path)"
			rep.WarrenLog.Lines = append(rep.WarrenLog.Lines, l)
		}
		rep.WarrenLog.Count += n
		rep.DirectLogs = h.direct.logTails(16 << 10)
	}
	rep.Machine.LoadEnd = readLoad()
	rep.Duration = time.Since(h.begin).Round(time.Second).String()
	rep.summarize()

	fmt.Println()
	rep.print(os.Stdout)
	if err := rep.write(h.cfg.Out); err != nil {
		return nil, err
	}
	abs, _ := filepath.Abs(h.cfg.Out)
	fmt.Printf("\nJSON: %s\n", abs)
	return rep, nil
}
