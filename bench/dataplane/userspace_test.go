package dataplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	"golang.org/x/net/proxy"

	"github.com/warrennet/warren/test/netlab"
)

// The userspace client's benchmark (issue 18): in one netlab lab the
// laptop runs both clients at once, the TUN daemon (root, `warren up`)
// and `warren daemon --userspace` as an ordinary user with a SOCKS5
// proxy, each enrolled as a node of its own and reaching the same
// connector over the same kind of path. The same Go client, re-executed
// in the laptop's namespace, takes each figure both ways, the TUN
// client's by dialing lanhost (the kernel routes it into warren0) and
// the userspace client's through SOCKS5 (golang.org/x/net/proxy): a bulk
// download, and the time to the first byte of a 1-byte echo on a new
// connection (connect, then one round trip; through SOCKS5 the connect
// includes the proxy's handshake and its dial through the tunnel). Each
// run takes both clients' figures back to back, in alternating order.
const (
	usOutEnv    = "WARREN_BENCH_USERSPACE_OUT" // the JSON file (default results/userspace.json)
	socksEnv    = "WARREN_DATAPLANE_SOCKS5"    // download, ttfb: dial through this SOCKS5 proxy
	durationEnv = "WARREN_DATAPLANE_SECONDS"   // download: seconds measured, after one of warm-up
	bulkPort    = "7009"                       // the bulk server on lanhost
	usSocks     = "127.0.0.1:1080"             // the userspace daemon's SOCKS5 proxy
	usAccount   = "bench"                      // the laptop account the userspace daemon runs as
	usGoal      = 0.7                          // issue 18: download ≥ 0.7× the TUN client's
)

// Child modes of the userspace benchmark (runMode in modes_test.go).
const (
	modeBulk     = "bulk"     // TCP server writing zeros to each connection until it closes; prints "listening"
	modeDownload = "download" // reads from the bulk server; prints downloadOut
	modeTTFB     = "ttfb"     // connect + 1-byte echo, sequentially; prints samplesOut
)

// serveBulk writes zeros to every TCP connection on addr until it ends.
func serveBulk(addr string) error {
	return serveTCP(addr, func(c net.Conn) {
		defer c.Close()
		buf := make([]byte, 256<<10)
		for {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	})
}

// dialFunc dials TCP directly, or through the SOCKS5 proxy at socks.
func dialFunc(socks string) (func(ctx context.Context, addr string) (net.Conn, error), error) {
	direct := &net.Dialer{}
	if socks == "" {
		return func(ctx context.Context, addr string) (net.Conn, error) { return direct.DialContext(ctx, "tcp", addr) }, nil
	}
	d, err := proxy.SOCKS5("tcp", socks, nil, direct)
	if err != nil {
		return nil, err
	}
	cd, ok := d.(proxy.ContextDialer)
	if !ok {
		return nil, errors.New("x/net/proxy's SOCKS5 dialer takes no context")
	}
	return func(ctx context.Context, addr string) (net.Conn, error) { return cd.DialContext(ctx, "tcp", addr) }, nil
}

// downloadOut is what the download mode prints.
type downloadOut struct {
	Bytes         int64   `json:"bytes"` // in the measured seconds
	Seconds       float64 `json:"seconds"`
	AllBytes      int64   `json:"all_bytes"` // the warm-up second included
	GbitPerSecond float64 `json:"gbit_per_second"`
}

// bulkDownload reads from the bulk server at addr for a second of warm-up
// and then for seconds, counting what arrives in those.
func bulkDownload(addr, socks string, seconds time.Duration) (downloadOut, error) {
	var out downloadOut
	dial, err := dialFunc(socks)
	if err != nil {
		return out, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	c, err := dial(ctx, addr)
	cancel()
	if err != nil {
		return out, err
	}
	defer c.Close()
	start := time.Now()
	c.SetDeadline(start.Add(time.Second + seconds + ioTimeout))
	buf := make([]byte, 256<<10)
	var t0 time.Time
	for {
		n, err := c.Read(buf)
		now := time.Now()
		out.AllBytes += int64(n)
		switch {
		case t0.IsZero() && now.Sub(start) >= time.Second:
			t0 = now
		case !t0.IsZero():
			out.Bytes += int64(n)
		}
		if err != nil {
			return out, fmt.Errorf("after %d bytes: %w", out.AllBytes, err)
		}
		if !t0.IsZero() && now.Sub(t0) >= seconds {
			out.Seconds = now.Sub(t0).Seconds()
			out.GbitPerSecond = float64(out.Bytes) * 8 / out.Seconds / 1e9
			return out, nil
		}
	}
}

// ttfbSamples times warmup+n sequential connections to the echo server
// at addr, each from the start of the dial until one byte written has
// come back, and keeps the last n.
func ttfbSamples(addr, socks string, n, warmup int) samplesOut {
	dial, err := dialFunc(socks)
	if err != nil {
		return samplesOut{Failures: 1, FirstError: err.Error()}
	}
	one := func() (time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		defer cancel()
		t0 := time.Now()
		c, err := dial(ctx, addr)
		if err != nil {
			return 0, err
		}
		defer c.Close()
		c.SetDeadline(t0.Add(ioTimeout))
		b := []byte{'x'}
		if _, err := c.Write(b); err != nil {
			return 0, err
		}
		if _, err := io.ReadFull(c, b); err != nil {
			return 0, err
		}
		return time.Since(t0), nil
	}
	return sampleN(n, warmup, one)
}

// runUserspaceMode runs one of this file's child modes.
func runUserspaceMode(mode, addr string) error {
	socks := os.Getenv(socksEnv)
	switch mode {
	case modeBulk:
		return serveBulk(addr)
	case modeDownload:
		secs, err := strconv.Atoi(os.Getenv(durationEnv))
		if err != nil {
			return err
		}
		out, err := bulkDownload(addr, socks, time.Duration(secs)*time.Second)
		if err != nil {
			return err
		}
		return json.NewEncoder(os.Stdout).Encode(out)
	default: // modeTTFB
		n, err1 := strconv.Atoi(os.Getenv(countEnv))
		warmup, err2 := strconv.Atoi(os.Getenv(warmupEnv))
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		return json.NewEncoder(os.Stdout).Encode(ttfbSamples(addr, socks, n, warmup))
	}
}

// usClient is one of the laptop's two clients.
type usClient struct {
	name  string // "tun" or "userspace"
	socks string // "" for the TUN client
	pid   int    // its daemon
}

// usRun is one run of both clients' figures.
type usRun struct {
	Run      int                    `json:"run"`
	Order    []string               `json:"order"` // the clients, in the order measured
	Download map[string]*usDownload `json:"download"`
	TTFB     map[string]*latency    `json:"time_to_first_byte"`
	Ratio    *float64               `json:"download_ratio,omitempty"` // userspace ÷ tun
	Errors   []string               `json:"errors,omitempty"`
}

// usDownload is one client's download of one run, with its daemon's CPU.
type usDownload struct {
	downloadOut
	CPUSeconds      float64 `json:"daemon_cpu_seconds"`
	CPUSecondsPerGB float64 `json:"daemon_cpu_seconds_per_gb"`
}

// usReport is what BenchmarkUserspace found; it is written as JSON.
type usReport struct {
	Started  time.Time `json:"started"`
	Duration string    `json:"duration"`
	Machine  machine   `json:"machine"`
	Versions versions  `json:"versions"`
	Config   config    `json:"config"`
	// Paths are how `warren status` of each client said the site LAN was
	// reached before the runs ("relay", "direct ADDR:PORT").
	Paths map[string]string `json:"paths"`
	Runs  []usRun           `json:"runs"`
	// Figures are the medians over the runs, by client, and the median
	// of the runs' ratios.
	Figures []usFigure `json:"figures"`
	// PeakRSSMB is each daemon's VmHWM at the end.
	PeakRSSMB map[string]float64 `json:"peak_rss_mb"`
	Notes     []string           `json:"notes,omitempty"`
	Logs      map[string]string  `json:"logs"`
}

// usFigure is one row of the table.
type usFigure struct {
	Key       string   `json:"key"`
	Name      string   `json:"name"`
	Unit      string   `json:"unit"`
	TUN       *float64 `json:"tun"`
	Userspace *float64 `json:"userspace"`
	Ratio     *float64 `json:"ratio"` // userspace ÷ tun
	Goal      string   `json:"goal,omitempty"`
	Verdict   string   `json:"verdict,omitempty"`
}

// BenchmarkUserspace measures the userspace client (SOCKS5) against the
// TUN client on one laptop, in the same run; see the comment at the top
// of this file. Like BenchmarkDataplane it needs root, does its own runs
// (WARREN_BENCH_RUNS, WARREN_BENCH_SECONDS, WARREN_BENCH_CONNECTS) and
// ignores b.N.
func BenchmarkUserspace(b *testing.B) {
	if err := available(); err != nil {
		fmt.Printf("BenchmarkUserspace: skipping the userspace-client benchmark: %v\n", err)
		b.Skipf("skipping the userspace-client benchmark: %v", err)
	}
	cfg, err := loadConfig()
	if err != nil {
		b.Fatal(err)
	}
	cfg.Out = "results/userspace.json"
	if v := os.Getenv(usOutEnv); v != "" {
		cfg.Out = v
	}
	_, ctx, cancel := runContexts()
	defer cancel()
	h := &harness{cfg: cfg}
	defer h.close()
	rep, err := h.runUserspace(ctx)
	if err != nil {
		h.dumpLogs(b)
		if h.lab != nil {
			h.lab.DumpOutputs(b)
		}
		b.Fatal(err)
	}
	for _, f := range rep.Figures {
		for _, m := range []struct {
			v    *float64
			unit string
		}{{f.TUN, "tun-" + f.Key}, {f.Userspace, "userspace-" + f.Key}, {f.Ratio, "userspace-x-tun-" + f.Key}} {
			if m.v != nil {
				b.ReportMetric(*m.v, m.unit)
			}
		}
	}
}

func (h *harness) runUserspace(ctx context.Context) (*usReport, error) {
	h.begin = time.Now()
	rep := &usReport{Started: h.begin.UTC(), Config: h.cfg, Machine: readMachine(), Paths: map[string]string{}, PeakRSSMB: map[string]float64{}}
	busy, err := cpuBusy(ctx, 2*time.Second)
	if err != nil {
		return nil, err
	}
	rep.Machine.BusyStartPct = 100 * busy
	if busy > 0.10 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("machine not idle at start: CPU %.0f%% busy", 100*busy))
	}
	if h.exe, err = os.Executable(); err != nil {
		return nil, err
	}
	if h.dir, err = os.MkdirTemp("", "warren-userspace-"); err != nil {
		return nil, err
	}
	if err := os.Chmod(h.dir, 0o755); err != nil {
		return nil, err
	}
	rep.Versions = readVersions(ctx)
	h.progress("building warren (./cmd/warren)")
	bin := filepath.Join(h.dir, "warren")
	if _, err := run(ctx, "go", "build", "-o", bin, "../../cmd/warren"); err != nil {
		return nil, fmt.Errorf("building warren: %w", err)
	}

	h.progress("netlab topology; coordinator+relay, connector (as nobody), the TUN daemon (warren up) and, as user %s, warren daemon --userspace --socks5 %s on the same laptop", usAccount, usSocks)
	if h.lab, err = netlab.New(ctx); err != nil {
		return nil, err
	}
	lanNS, laptopNS := h.lab.NS(netlab.LANHost), h.lab.NS(netlab.Laptop)
	if err := h.startEcho(ctx, lanNS, echoPort); err != nil {
		return nil, err
	}
	bulk, err := h.procs.start(lanNS, "env", modeEnv+"="+modeBulk, addrEnv+"=0.0.0.0:"+bulkPort, h.exe)
	if err != nil {
		return nil, err
	}
	if err := bulk.waitOutput(ctx, "listening", 10*time.Second); err != nil {
		return nil, err
	}
	accts, err := h.lab.AddAccounts(netlab.Laptop, usAccount)
	if err != nil {
		return nil, err
	}
	if h.warren, err = deployWarren(ctx, h.lab, bin, filepath.Join(h.dir, "lab"), false); err != nil {
		return nil, err
	}
	us, err := h.warren.StartUserspaceDaemon(ctx, accts[0], "--socks5", usSocks)
	if err != nil {
		return nil, err
	}
	tok, err := h.warren.admin(ctx, "token", "create", "--role", "client", "--name", "laptop-userspace", "--user", benchUser)
	if err != nil {
		return nil, err
	}
	if out, err := us.Up(ctx, tok); err != nil {
		return nil, fmt.Errorf("warren up (userspace): %w\n%s\n%s", err, out, tail(us.Proc.Output(), 2000))
	}
	tunPID, err := findPID(ctx, laptopNS, func(argv []string) bool {
		return len(argv) > 1 && argv[0] == bin && argv[1] == "daemon" && !slices.Contains(argv, "--userspace")
	})
	if err != nil {
		return nil, fmt.Errorf("finding the TUN daemon: %w", err)
	}
	clients := []usClient{{name: "tun", pid: tunPID}, {name: "userspace", socks: usSocks, pid: us.Proc.Pid()}}
	status := map[string]func() (string, error){
		"tun":       func() (string, error) { return h.warren.laptop(ctx, "status") },
		"userspace": func() (string, error) { return us.Run(ctx, "status") },
	}
	lanEcho, lanBulk := netJoin(netlab.LANHostIP, echoPort), netJoin(netlab.LANHostIP, bulkPort)
	// Both clients look for a direct path once they carry traffic.
	for _, c := range clients {
		start := time.Now()
		err := poll(ctx, directWait, func() error {
			if _, err := h.ttfb(ctx, laptopNS, lanEcho, c.socks, 1, 0); err != nil {
				return err
			}
			st, err := status[c.name]()
			if err != nil {
				return err
			}
			if rep.Paths[c.name] = routeVia(st); !strings.HasPrefix(rep.Paths[c.name], "direct ") {
				return fmt.Errorf("the route is via %q", rep.Paths[c.name])
			}
			return nil
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			n := fmt.Sprintf("%s client: no direct path after %v (%v); measured on %q", c.name, directWait, err, rep.Paths[c.name])
			rep.Notes = append(rep.Notes, n)
			h.progress("warning: %s", n)
			continue
		}
		h.progress("%s client: %s after %v", c.name, rep.Paths[c.name], time.Since(start).Round(100*time.Millisecond))
	}

	for r := range h.cfg.Runs {
		rr := usRun{Run: r + 1, Download: map[string]*usDownload{}, TTFB: map[string]*latency{}}
		order := slices.Clone(clients)
		if r%2 == 1 {
			slices.Reverse(order)
		}
		h.progress("run %d/%d", r+1, h.cfg.Runs)
		for _, c := range order {
			rr.Order = append(rr.Order, c.name)
			d, err := h.usDownload(ctx, laptopNS, lanBulk, c)
			if err != nil {
				rr.Errors = append(rr.Errors, fmt.Sprintf("%s download: %v", c.name, err))
				h.progress("  %-9s download               ERROR %v", c.name, err)
			} else {
				rr.Download[c.name] = d
				h.progress("  %-9s download               %.2f Gbit/s, daemon %.2f CPU-s/GB", c.name, d.GbitPerSecond, d.CPUSecondsPerGB)
			}
			l, err := h.ttfb(ctx, laptopNS, lanEcho, c.socks, h.cfg.Connects, h.cfg.Warmup)
			if err != nil {
				rr.Errors = append(rr.Errors, fmt.Sprintf("%s time to first byte: %v", c.name, err))
				h.progress("  %-9s time to first byte     ERROR %v", c.name, err)
			} else {
				rr.TTFB[c.name] = l
				h.progress("  %-9s time to first byte     p50 %.0f µs, p99 %.0f µs (%d failed)", c.name, l.P50us, l.P99us, l.Failures)
			}
		}
		if t, u := rr.Download["tun"], rr.Download["userspace"]; t != nil && u != nil && t.GbitPerSecond > 0 {
			rr.Ratio = ptr(u.GbitPerSecond / t.GbitPerSecond)
		}
		rep.Runs = append(rep.Runs, rr)
	}
	for _, c := range clients {
		if m, err := readMemory(c.pid); err == nil {
			rep.PeakRSSMB[c.name] = m.PeakMB
		}
	}
	rep.Logs = map[string]string{"userspace daemon": tail(us.Proc.Output(), 8<<10), "daemon": tail(h.warren.Daemon.Output(), 8<<10),
		"connector": tail(h.warren.Conn.Output(), 8<<10)}
	rep.Machine.LoadEnd = readLoad()
	rep.summarize()
	rep.Duration = time.Since(h.begin).Round(time.Second).String()
	fmt.Println()
	rep.print(os.Stdout)
	if err := writeJSON(h.cfg.Out, rep); err != nil {
		return nil, err
	}
	abs, _ := filepath.Abs(h.cfg.Out)
	fmt.Printf("\nJSON: %s\n", abs)
	return rep, nil
}

// usDownload runs one download from the laptop's namespace through
// client c, with its daemon's CPU time around it.
func (h *harness) usDownload(ctx context.Context, ns, addr string, c usClient) (*usDownload, error) {
	cpu0, err := cpuSeconds(c.pid)
	if err != nil {
		return nil, err
	}
	var out downloadOut
	env := []string{addrEnv + "=" + addr, durationEnv + "=" + strconv.Itoa(h.cfg.Seconds)}
	if c.socks != "" {
		env = append(env, socksEnv+"="+c.socks)
	}
	if err := runChildJSON(ctx, time.Duration(h.cfg.Seconds)*time.Second+30*time.Second, ns, h.exe, modeDownload, &out, env...); err != nil {
		return nil, err
	}
	cpu1, err := cpuSeconds(c.pid)
	if err != nil {
		return nil, err
	}
	d := &usDownload{downloadOut: out, CPUSeconds: cpu1 - cpu0}
	if out.AllBytes > 0 {
		d.CPUSecondsPerGB = d.CPUSeconds / (float64(out.AllBytes) / 1e9)
	}
	return d, nil
}

// ttfb takes n time-to-first-byte samples (after warmup) from ns to the
// echo server at addr, through the SOCKS5 proxy socks if set. A run with
// failures is an error only when it has no sample.
func (h *harness) ttfb(ctx context.Context, ns, addr, socks string, n, warmup int) (*latency, error) {
	var s samplesOut
	env := []string{addrEnv + "=" + addr, countEnv + "=" + strconv.Itoa(n), warmupEnv + "=" + strconv.Itoa(warmup)}
	if socks != "" {
		env = append(env, socksEnv+"="+socks)
	}
	if err := runChildJSON(ctx, time.Duration(n+warmup)*ioTimeout+30*time.Second, ns, h.exe, modeTTFB, &s, env...); err != nil {
		return nil, err
	}
	l := summarize(s)
	if l.N == 0 {
		return nil, fmt.Errorf("no sample: %d failed, the first: %s", l.Failures, l.FirstError)
	}
	return &l, nil
}

// summarize fills Figures from the runs.
func (r *usReport) summarize() {
	pick := func(client string, f func(usRun, string) *float64) *float64 {
		var vs []float64
		for _, rr := range r.Runs {
			if v := f(rr, client); v != nil {
				vs = append(vs, *v)
			}
		}
		return medianPtr(vs)
	}
	gbps := func(rr usRun, c string) *float64 {
		if d := rr.Download[c]; d != nil {
			return ptr(d.GbitPerSecond)
		}
		return nil
	}
	cpu := func(rr usRun, c string) *float64 {
		if d := rr.Download[c]; d != nil && d.AllBytes > 0 {
			return ptr(d.CPUSecondsPerGB)
		}
		return nil
	}
	p50 := func(rr usRun, c string) *float64 {
		if l := rr.TTFB[c]; l != nil {
			return ptr(l.P50us)
		}
		return nil
	}
	p99 := func(rr usRun, c string) *float64 {
		if l := rr.TTFB[c]; l != nil {
			return ptr(l.P99us)
		}
		return nil
	}
	ratio := func(t, u *float64) *float64 {
		if t == nil || u == nil || *t == 0 {
			return nil
		}
		return ptr(*u / *t)
	}
	for _, f := range []struct {
		key, name, unit string
		get             func(usRun, string) *float64
	}{
		{"download_gbps", "download, 1 stream", "Gbit/s", gbps},
		{"download_daemon_cpu_s_per_gb", "daemon CPU, download", "CPU-s/GB", cpu},
		{"ttfb_p50_us", "time to first byte p50", "µs", p50},
		{"ttfb_p99_us", "time to first byte p99", "µs", p99},
	} {
		row := usFigure{Key: f.key, Name: f.name, Unit: f.unit, TUN: pick("tun", f.get), Userspace: pick("userspace", f.get)}
		row.Ratio = ratio(row.TUN, row.Userspace)
		if f.key == "download_gbps" {
			// The median of the runs' own ratios: each run's two figures
			// are seconds apart.
			var rs []float64
			for _, rr := range r.Runs {
				if rr.Ratio != nil {
					rs = append(rs, *rr.Ratio)
				}
			}
			row.Ratio = medianPtr(rs)
			row.Goal = fmt.Sprintf("≥ %.1f×", usGoal)
			switch {
			case row.Ratio == nil:
				row.Verdict = "no data"
			case *row.Ratio >= usGoal:
				row.Verdict = "meets goal"
			default:
				row.Verdict = "misses goal"
			}
		}
		r.Figures = append(r.Figures, row)
	}
}

// print writes the header and the table.
func (r *usReport) print(w io.Writer) {
	fmt.Fprintf(w, "Warren userspace-client bench, %s, %d run(s), medians; took %s\n", r.Started.Format(time.RFC3339), r.Config.Runs, r.Duration)
	fmt.Fprintf(w, "machine:  %s, %d cores, kernel %s, %s; CPU %.0f%% busy before the start; load average %s at the start, %s at the end\n",
		r.Machine.CPU, r.Machine.Cores, r.Machine.Kernel, r.Machine.Go, r.Machine.BusyStartPct, r.Machine.LoadStart, r.Machine.LoadEnd)
	fmt.Fprintf(w, "versions: warren %s; wireguard-go %s; gvisor %s\n", r.Versions.Warren, r.Versions.WireGuardGo, r.Versions.GVisor)
	fmt.Fprintf(w, "clients:  tun        warren daemon (root, TUN) on the laptop, dialed through the kernel; path %s\n", r.Paths["tun"])
	fmt.Fprintf(w, "          userspace  warren daemon --userspace as user %s on the same laptop, through SOCKS5 %s\n", usAccount, usSocks)
	fmt.Fprintf(w, "                     (golang.org/x/net/proxy); path %s\n", r.Paths["userspace"])
	fmt.Fprintf(w, "method:   one Go client both ways: a %d s download (after 1 s of warm-up) from a bulk server on lanhost; %d connections\n",
		r.Config.Seconds, r.Config.Connects)
	fmt.Fprintf(w, "          after %d warm-up, each timed from the dial until 1 byte written has come back from an echo server\n\n", r.Config.Warmup)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tunit\ttun\tuserspace\tuserspace÷tun\tgoal\tverdict")
	for _, f := range r.Figures {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Name, f.Unit, format(f.TUN, f.Unit), format(f.Userspace, f.Unit), format(f.Ratio, "×"), f.Goal, f.Verdict)
	}
	for _, c := range []string{"tun", "userspace"} {
		if v, ok := r.PeakRSSMB[c]; ok {
			fmt.Fprintf(tw, "peak RSS, %s daemon\tMB\t%s\t\t\t\t\n", c, format(&v, "MB"))
		}
	}
	tw.Flush()
	var per []string
	for _, rr := range r.Runs {
		t, u := "—", "—"
		if d := rr.Download["tun"]; d != nil {
			t = fmt.Sprintf("%.2f", d.GbitPerSecond)
		}
		if d := rr.Download["userspace"]; d != nil {
			u = fmt.Sprintf("%.2f", d.GbitPerSecond)
		}
		per = append(per, fmt.Sprintf("%s/%s (%s)", t, u, format(rr.Ratio, "×")))
		for _, e := range rr.Errors {
			fmt.Fprintf(w, "run %d: ERROR %s\n", rr.Run, e)
		}
	}
	fmt.Fprintf(w, "\nthe runs, download Gbit/s tun/userspace (ratio): %s\n", strings.Join(per, ", "))
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

// writeJSON saves v as indented JSON, replacing path atomically.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("writing results: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing results: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing results: %w", err)
	}
	return nil
}
