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
	"runtime"
	"slices"
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
	// Ctrl-C or SIGTERM ends the run; the deferred close below removes
	// every namespace and process. A second Ctrl-C kills at once.
	sigCtx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-sigCtx.Done()
		stop()
	}()
	ctx, cancel := context.WithTimeout(sigCtx, budget())
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

// echoPort is the echo server's port on the server side of each path.
const echoPort = "7007"

// warrenTUN is the laptop daemon's TUN (its --interface default).
const warrenTUN = "warren0"

// path is one way from an iperf3 client to its server.
type path struct {
	name     string // veth, wggo, warren (the relay path), direct
	clientNS string
	serverNS string
	target   string // the server's address as the client dials it
	// legs are the namespaces whose kernel counters are read, by role;
	// the sender and receiver of each direction are the client and
	// server legs.
	legs map[string]leg
	// pids are the tunnel's processes by role (client, server, relay).
	pids map[string]int
}

// Roles of a path's processes and namespaces.
const (
	roleClient = "client"
	roleServer = "server"
	roleRelay  = "relay"
	roleLAN    = "lan" // Warren's connector namespace: the connector's LAN sockets
)

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

// warrenPath is the path through deployment d, named name: iperf3 from
// the laptop to lanhost, with the counters of laptop (and its TUN), coord,
// conn and lanhost, and the daemon, connector and coordinator as the
// client, server and relay processes.
func (h *harness) warrenPath(ctx context.Context, name string, d *warrenDeployment, bin string) (*path, error) {
	pids := map[string]int{}
	for role, r := range map[string]struct{ ns, cmd string }{
		roleClient: {d.lab.NS(netlab.Laptop), "daemon"},
		roleServer: {d.lab.NS(netlab.Conn), "connector"},
		roleRelay:  {d.lab.NS(netlab.Coord), "coordinator"},
	} {
		pid, err := findPID(ctx, r.ns, func(argv []string) bool {
			return len(argv) > 1 && argv[0] == bin && argv[1] == r.cmd
		})
		if err != nil {
			return nil, fmt.Errorf("finding warren %s (%s path): %w", r.cmd, name, err)
		}
		pids[role] = pid
	}
	return &path{name: name, clientNS: d.lab.NS(netlab.Laptop), serverNS: d.lab.NS(netlab.LANHost), target: netlab.LANHostIP,
		legs: map[string]leg{roleClient: {d.lab.NS(netlab.Laptop), warrenTUN}, roleRelay: {ns: d.lab.NS(netlab.Coord)},
			roleLAN: {ns: d.lab.NS(netlab.Conn)}, roleServer: {ns: d.lab.NS(netlab.LANHost)}},
		pids: pids}, nil
}

// setupNaive starts the naive connector (see naive_test.go) and returns
// its path: iperf3 from a through a's stock wireguard-go (clientPID) to
// the naive connector in b, which connects to c. When it cannot, it
// returns no path and why: the other paths are still measured.
func (h *harness) setupNaive(ctx context.Context, clientPID int) (*path, string) {
	pid, err := h.pair.startNaive(ctx, h.exe)
	if err != nil {
		return nil, err.Error()
	}
	if err := h.startEcho(ctx, h.pair.ns(pairC), echoPort); err != nil {
		return nil, fmt.Sprintf("echo server: %v", err)
	}
	return &path{name: "naive", clientNS: h.pair.ns(pairA), serverNS: h.pair.ns(pairC), target: naiveTun,
		pids: map[string]int{roleClient: clientPID, roleServer: pid},
		legs: map[string]leg{roleClient: {h.pair.ns(pairA), h.pair.ifname(pairA)}, roleLAN: {ns: h.pair.ns(pairB)},
			roleServer: {ns: h.pair.ns(pairC)}}}, ""
}

// setupDirect builds the second lab, deploys Warren there without
// --relay-only and waits up to directWait for a direct path. When there
// is none, it returns no path and why, not an error: the other paths are
// still measured. It returns an error only when ctx ends.
func (h *harness) setupDirect(ctx context.Context, bin string) (p *path, missing string, err error) {
	defer func() {
		if err == nil && missing != "" && ctx.Err() != nil {
			p, missing, err = nil, "", ctx.Err()
		}
	}()
	if h.directLab, err = netlab.New(ctx); err != nil {
		return nil, fmt.Sprintf("building the second lab: %v", err), nil
	}
	if err := h.startEcho(ctx, h.directLab.NS(netlab.LANHost), echoPort); err != nil {
		return nil, fmt.Sprintf("echo server: %v", err), nil
	}
	d, err := deployWarren(ctx, h.directLab, bin, filepath.Join(h.dir, "direct"), false)
	if err != nil {
		return nil, fmt.Sprintf("deploying Warren: %v", err), nil
	}
	h.direct = d
	h.progress("warren up (direct lab): %s", strings.ReplaceAll(strings.TrimSpace(d.UpOutput), "\n", " | "))
	start := time.Now()
	via, status, err := d.waitDirect(ctx, directWait)
	if status != "" {
		d.Status = status
	}
	if err != nil {
		return nil, fmt.Sprintf("warren status never showed \"via office (direct …)\" (ping to %s meanwhile): %v", netlab.LANHostIP, err), nil
	}
	h.progress("direct path up after %v: %s", time.Since(start).Round(100*time.Millisecond), via)
	if p, err = h.warrenPath(ctx, "direct", d, bin); err != nil {
		return nil, err.Error(), nil
	}
	return p, "", nil
}

// checkRoute returns the route's path in `warren status` after a Warren
// path's figures, and notes in rep when it is not the path measured: a
// direct path that fell back to the relay, or a relay-only path that
// went direct.
func (h *harness) checkRoute(ctx context.Context, run int, name string, d *warrenDeployment, rep *report) string {
	via, err := d.route(ctx)
	if err != nil {
		via = "unknown: " + err.Error()
	}
	if ok := (name == "direct") == strings.HasPrefix(via, "direct "); !ok {
		n := fmt.Sprintf("run %d %s: after its figures, warren status shows the route via %q", run, name, via)
		rep.Notes = append(rep.Notes, n)
		h.progress("  warning: %s", n)
	}
	return via
}

// startEcho starts this binary as a TCP echo server on port in ns.
func (h *harness) startEcho(ctx context.Context, ns, port string) error {
	p, err := h.procs.start(ns, "env", modeEnv+"="+modeEcho, addrEnv+"=0.0.0.0:"+port, h.exe)
	if err != nil {
		return err
	}
	return p.waitOutput(ctx, "listening", 10*time.Second)
}

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

// transfer is one iperf3 run over a path with what the kernel and the
// tunnel's processes did meanwhile.
type transfer struct {
	iperfResult
	GbitPerSecond float64 `json:"gbit_per_second"` // as received
	// Legs are the kernel counter deltas of the path's namespaces.
	Legs map[string]netCounters `json:"legs"`
	// UDPRcvbufErrors and TunDropped sum those counters over the legs.
	UDPRcvbufErrors int64 `json:"udp_rcvbuf_errors"`
	TunDropped      int64 `json:"tun_dropped"`
	// RetransPct is 100 × RetransSegs / OutSegs in the iperf3 sender's
	// namespace; ReceiverOFOPct is 100 × OFOQueue / InSegs in the
	// receiver's.
	RetransPct     float64 `json:"retrans_pct"`
	ReceiverOFOPct float64 `json:"receiver_ofo_pct"`
	// CPUSeconds and CPUSecondsPerGB are per tunnel process role, plus
	// "total"; GB is 10^9 bytes of iperf3 payload, warm-up included.
	CPUSeconds      map[string]float64 `json:"cpu_seconds,omitempty"`
	CPUSecondsPerGB map[string]float64 `json:"cpu_seconds_per_gb,omitempty"`
}

// iperfServer starts a fresh one-off iperf3 server in p's server
// namespace and waits until it listens: a client that failed cannot leave
// it busy for the next.
func (h *harness) iperfServer(ctx context.Context, p *path) (*proc, error) {
	srv, err := h.procs.start(p.serverNS, "iperf3", "-s", "-1", "--forceflush")
	if err != nil {
		return nil, err
	}
	if err := srv.waitOutput(ctx, "Server listening", 10*time.Second); err != nil {
		srv.stop()
		return nil, err
	}
	return srv, nil
}

func (h *harness) transfer(ctx context.Context, p *path, reverse bool, streams int) (*transfer, error) {
	srv, err := h.iperfServer(ctx, p)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	before, cpu0, err := h.snapshot(ctx, p)
	if err != nil {
		return nil, err
	}
	args := []string{"-c", p.target, "-t", strconv.Itoa(h.cfg.Seconds), "-O", strconv.Itoa(h.cfg.Omit), "-J", "--connect-timeout", "5000"}
	if reverse {
		args = append(args, "-R")
	}
	if streams > 1 {
		args = append(args, "-P", strconv.Itoa(streams))
	}
	cctx, cancel := context.WithTimeout(ctx, time.Duration(h.cfg.Seconds+h.cfg.Omit+30)*time.Second)
	defer cancel()
	out, runErr := nsOutput(cctx, p.clientNS, "iperf3", args...)
	after, cpu1, err := h.snapshot(ctx, p)
	if err != nil {
		return nil, err
	}
	res, err := parseIperf([]byte(out))
	if err != nil {
		return nil, errors.Join(err, runErr)
	}
	t := &transfer{iperfResult: res, GbitPerSecond: res.ReceivedBitsPerSecond / 1e9, Legs: map[string]netCounters{}}
	for role := range before {
		d := after[role].sub(before[role])
		t.Legs[role] = d
		t.UDPRcvbufErrors += d.UDPRcvbufErrors
		t.TunDropped += d.TunTxDropped + d.TunRxDropped
	}
	sender, receiver := t.Legs[roleClient], t.Legs[roleServer]
	if reverse {
		sender, receiver = receiver, sender
	}
	t.RetransPct = pct(sender.RetransSegs, sender.OutSegs)
	t.ReceiverOFOPct = pct(receiver.OFOQueue, receiver.InSegs)
	if len(p.pids) > 0 {
		t.CPUSeconds, t.CPUSecondsPerGB = map[string]float64{}, map[string]float64{}
		gb := float64(res.AllBytes) / 1e9
		total := 0.0
		for role := range p.pids {
			d := cpu1[role] - cpu0[role]
			total += d
			t.CPUSeconds[role] = d
			t.CPUSecondsPerGB[role] = d / gb
		}
		t.CPUSeconds["total"], t.CPUSecondsPerGB["total"] = total, total/gb
	}
	// The one-off server ends by itself after the client's report.
	_ = poll(ctx, 5*time.Second, func() error {
		if srv.exited() {
			return nil
		}
		return errors.New("iperf3 server still running")
	})
	return t, nil
}

func pct(part, whole int64) float64 {
	if whole <= 0 {
		return 0
	}
	return 100 * float64(part) / float64(whole)
}

// snapshot reads the kernel TCP counters of every leg and the CPU time of
// every tunnel process of p.
func (h *harness) snapshot(ctx context.Context, p *path) (map[string]netCounters, map[string]float64, error) {
	counters := map[string]netCounters{}
	for role, l := range p.legs {
		c, err := readCounters(ctx, l)
		if err != nil {
			return nil, nil, err
		}
		counters[role] = c
	}
	cpu := map[string]float64{}
	for role, pid := range p.pids {
		s, err := cpuSeconds(pid)
		if err != nil {
			return nil, nil, fmt.Errorf("%s %s process (pid %d): %w", p.name, role, pid, err)
		}
		cpu[role] = s
	}
	return counters, cpu, nil
}

// procMemory is one tunnel process's memory: after setup, before any
// traffic, and at the end of the benchmark (peak is VmHWM).
type procMemory struct {
	Path    string  `json:"path"`
	Role    string  `json:"role"`
	Process string  `json:"process"`
	IdleMB  float64 `json:"idle_rss_mb"`
	EndMB   float64 `json:"end_rss_mb"`
	PeakMB  float64 `json:"peak_rss_mb"`
	Error   string  `json:"error,omitempty"`
}

var processNames = map[string]map[string]string{
	"wggo":   {roleClient: "wireguard-go (client side)", roleServer: "wireguard-go (server side)"},
	"warren": {roleClient: "warren daemon, relay path", roleServer: "warren connector, relay path", roleRelay: "warren coordinator (relay), relay path"},
	"direct": {roleClient: "warren daemon, direct path", roleServer: "warren connector, direct path", roleRelay: "warren coordinator (relay), direct path"},
	"naive":  {roleClient: "wireguard-go (client side), as above", roleServer: "naive connector (tun/netstack + io.Copy)"},
}

type memKey struct{ path, role string }

// readMemories reads the memory of every tunnel process of paths; a nil
// path (the direct one, when missing) is skipped.
func readMemories(paths ...*path) map[memKey]procMemory {
	m := map[memKey]procMemory{}
	for _, p := range paths {
		if p == nil {
			continue
		}
		for role, pid := range p.pids {
			pm := procMemory{Path: p.name, Role: role, Process: processNames[p.name][role]}
			mem, err := readMemory(pid)
			if err != nil {
				pm.Error = err.Error()
			}
			pm.EndMB, pm.PeakMB = mem.RSSMB, mem.PeakMB
			m[memKey{p.name, role}] = pm
		}
	}
	return m
}

func memoryRows(idle, end map[memKey]procMemory) []procMemory {
	var rows []procMemory
	for k, e := range end {
		e.IdleMB = idle[k].EndMB
		if e.Error == "" {
			e.Error = idle[k].Error
		}
		rows = append(rows, e)
	}
	paths := map[string]int{"wggo": 0, "naive": 1, "warren": 2, "direct": 3}
	roles := map[string]int{roleClient: 0, roleServer: 1, roleRelay: 2}
	slices.SortFunc(rows, func(a, b procMemory) int {
		if a.Path != b.Path {
			return paths[a.Path] - paths[b.Path]
		}
		return roles[a.Role] - roles[b.Role]
	})
	return rows
}

// machine describes where the figures were taken.
type machine struct {
	CPU    string `json:"cpu"`
	Cores  int    `json:"cores"`
	Kernel string `json:"kernel"`
	Go     string `json:"go"`
	// TCPCongestion is the kernel's default congestion control, which
	// every kernel TCP sender in the labs uses (stock wireguard-go's
	// iperf3 and the LAN host); Warren's connector sends with gVisor's
	// Reno.
	TCPCongestion string `json:"tcp_congestion_control"`
	// BusyStartPct is how busy the CPUs were in the 2 s before the start.
	BusyStartPct float64 `json:"cpu_busy_pct_start"`
	LoadStart    string  `json:"loadavg_start"`
	LoadEnd      string  `json:"loadavg_end"`
}

func readMachine() machine {
	m := machine{CPU: "unknown", Cores: runtime.NumCPU(), Go: runtime.Version(), LoadStart: readLoad()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_congestion_control"); err == nil {
		m.TCPCongestion = strings.TrimSpace(string(b))
	}
	return m
}

func readLoad() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// cpuBusy returns the fraction of all CPUs' time that was not idle over
// the next d, from /proc/stat.
func cpuBusy(ctx context.Context, d time.Duration) (float64, error) {
	idle0, total0, err := readCPUTimes()
	if err != nil {
		return 0, err
	}
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(d):
	}
	idle1, total1, err := readCPUTimes()
	if err != nil || total1 <= total0 {
		return 0, err
	}
	return 1 - float64(idle1-idle0)/float64(total1-total0), nil
}

func readCPUTimes() (idle, total int64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return parseCPUTimes(line)
}

// parseCPUTimes reads the "cpu" line of /proc/stat: idle is idle+iowait,
// total every field but guest and guest_nice (already counted in user).
func parseCPUTimes(line string) (idle, total int64, err error) {
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("unexpected /proc/stat line %q", line)
	}
	for i, v := range f[1:9] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("parsing /proc/stat: %w", err)
		}
		total += n
		if i == 3 || i == 4 {
			idle += n
		}
	}
	return idle, total, nil
}

// versions are what was measured.
type versions struct {
	Warren      string `json:"warren"` // git commit, and how many files differ from it
	WireGuardGo string `json:"wireguard_go"`
	GVisor      string `json:"gvisor"`
}

func readVersions(ctx context.Context) versions {
	v := versions{Warren: "unknown", WireGuardGo: "unknown", GVisor: "unknown"}
	if out, err := run(ctx, "go", "list", "-m", "-f", "{{.Version}}", "golang.zx2c4.com/wireguard", "gvisor.dev/gvisor"); err == nil {
		if f := strings.Fields(out); len(f) == 2 {
			v.WireGuardGo, v.GVisor = f[0], f[1]
		}
	}
	if out, err := run(ctx, "git", "rev-parse", "--short", "HEAD"); err == nil {
		v.Warren = strings.TrimSpace(out)
		if st, err := run(ctx, "git", "status", "--porcelain", "../.."); err == nil {
			if st = strings.TrimSpace(st); st != "" {
				v.Warren += fmt.Sprintf(" + %d uncommitted changed or new files", len(strings.Split(st, "\n")))
			}
		}
	}
	return v
}
