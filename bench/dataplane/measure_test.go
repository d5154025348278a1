package dataplane

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// iperfResult is what one iperf3 -J client run reports.
type iperfResult struct {
	SentBitsPerSecond     float64 `json:"sent_bits_per_second"`
	ReceivedBitsPerSecond float64 `json:"received_bits_per_second"`
	SentBytes             int64   `json:"sent_bytes"`
	ReceivedBytes         int64   `json:"received_bytes"`
	// Retransmits is the iperf3 sender's count (kernel TCP_INFO of its
	// sockets), over the measured seconds only.
	Retransmits int64 `json:"retransmits"`
	// AllBytes counts every interval, the omitted warm-up included: the
	// bytes moved while the CPU counters ran.
	AllBytes int64 `json:"all_bytes"`
}

// iperfJSON is the part of iperf3's -J output the benchmark reads.
type iperfJSON struct {
	Error     string `json:"error"`
	Intervals []struct {
		Sum struct {
			Bytes   int64 `json:"bytes"`
			Omitted bool  `json:"omitted"`
		} `json:"sum"`
	} `json:"intervals"`
	End struct {
		SumSent struct {
			Bytes         int64   `json:"bytes"`
			BitsPerSecond float64 `json:"bits_per_second"`
			Retransmits   int64   `json:"retransmits"`
		} `json:"sum_sent"`
		SumReceived struct {
			Bytes         int64   `json:"bytes"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
}

// parseIperf reads iperf3 -J output.
func parseIperf(b []byte) (iperfResult, error) {
	var j iperfJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return iperfResult{}, fmt.Errorf("parsing iperf3 output: %w", err)
	}
	if j.Error != "" {
		return iperfResult{}, fmt.Errorf("iperf3: %s", j.Error)
	}
	r := iperfResult{
		SentBitsPerSecond:     j.End.SumSent.BitsPerSecond,
		ReceivedBitsPerSecond: j.End.SumReceived.BitsPerSecond,
		SentBytes:             j.End.SumSent.Bytes,
		ReceivedBytes:         j.End.SumReceived.Bytes,
		Retransmits:           j.End.SumSent.Retransmits,
	}
	for _, iv := range j.Intervals {
		r.AllBytes += iv.Sum.Bytes
	}
	if r.ReceivedBytes == 0 {
		return r, errors.New("iperf3 moved no data")
	}
	return r, nil
}

// netCounters are a namespace's kernel counters (/proc/net/snmp,
// /proc/net/netstat and a TUN's statistics), or a difference of two
// readings.
type netCounters struct {
	InSegs      int64 `json:"tcp_in_segs"`
	OutSegs     int64 `json:"tcp_out_segs"`
	RetransSegs int64 `json:"tcp_retrans_segs"`
	// OFOQueue counts segments queued out of order at a receiver: a hole
	// before them, from loss or reordering anywhere on the path.
	OFOQueue int64 `json:"tcp_ofo_queue"`
	// UDP datagrams dropped because a socket's buffer was full.
	UDPRcvbufErrors int64 `json:"udp_rcvbuf_errors"`
	UDPSndbufErrors int64 `json:"udp_sndbuf_errors"`
	// Packets the namespace's tunnel TUN dropped (its queue to the
	// tunnel process was full, or the process did not take them).
	TunTxDropped int64 `json:"tun_tx_dropped"`
	TunRxDropped int64 `json:"tun_rx_dropped"`
}

func (c netCounters) sub(o netCounters) netCounters {
	return netCounters{
		InSegs: c.InSegs - o.InSegs, OutSegs: c.OutSegs - o.OutSegs, RetransSegs: c.RetransSegs - o.RetransSegs, OFOQueue: c.OFOQueue - o.OFOQueue,
		UDPRcvbufErrors: c.UDPRcvbufErrors - o.UDPRcvbufErrors, UDPSndbufErrors: c.UDPSndbufErrors - o.UDPSndbufErrors,
		TunTxDropped: c.TunTxDropped - o.TunTxDropped, TunRxDropped: c.TunRxDropped - o.TunRxDropped,
	}
}

// leg is a namespace of a path, and its tunnel TUN if it has one.
type leg struct {
	ns  string
	tun string
}

// readCounters reads the counters of a leg.
func readCounters(ctx context.Context, l leg) (netCounters, error) {
	out, err := nsOutput(ctx, l.ns, "cat", "/proc/net/snmp", "/proc/net/netstat")
	if err != nil {
		return netCounters{}, err
	}
	c, err := parseCounters(out)
	if err != nil || l.tun == "" {
		return c, err
	}
	// ip netns exec mounts the namespace's own /sys.
	dir := "/sys/class/net/" + l.tun + "/statistics/"
	out, err = nsOutput(ctx, l.ns, "cat", dir+"tx_dropped", dir+"rx_dropped")
	if err != nil {
		return c, err
	}
	f := strings.Fields(out)
	if len(f) != 2 {
		return c, fmt.Errorf("reading %s drop counters: %q", l.tun, out)
	}
	tx, err1 := strconv.ParseInt(f[0], 10, 64)
	rx, err2 := strconv.ParseInt(f[1], 10, 64)
	c.TunTxDropped, c.TunRxDropped = tx, rx
	return c, errors.Join(err1, err2)
}

// parseCounters parses the header/value line pairs of /proc/net/snmp and
// /proc/net/netstat.
func parseCounters(s string) (netCounters, error) {
	vals := map[string]int64{}
	lines := strings.Split(s, "\n")
	for i := 0; i+1 < len(lines); i++ {
		h, v := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(h) < 2 || len(h) != len(v) || h[0] != v[0] || (h[0] != "Tcp:" && h[0] != "TcpExt:" && h[0] != "Udp:") {
			continue
		}
		if _, err := strconv.ParseInt(v[1], 10, 64); err != nil {
			continue // v is another header
		}
		for k := 1; k < len(h); k++ {
			n, err := strconv.ParseInt(v[k], 10, 64)
			if err != nil {
				return netCounters{}, fmt.Errorf("parsing %s %s: %w", h[0], h[k], err)
			}
			vals[h[0]+h[k]] = n
		}
		i++
	}
	for _, k := range []string{"Tcp:InSegs", "Tcp:OutSegs", "Tcp:RetransSegs", "TcpExt:TCPOFOQueue", "Udp:RcvbufErrors", "Udp:SndbufErrors"} {
		if _, ok := vals[k]; !ok {
			return netCounters{}, fmt.Errorf("no %s counter", k)
		}
	}
	return netCounters{
		InSegs: vals["Tcp:InSegs"], OutSegs: vals["Tcp:OutSegs"], RetransSegs: vals["Tcp:RetransSegs"], OFOQueue: vals["TcpExt:TCPOFOQueue"],
		UDPRcvbufErrors: vals["Udp:RcvbufErrors"], UDPSndbufErrors: vals["Udp:SndbufErrors"],
	}, nil
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat:
// 100 on every Linux architecture.
const clockTicks = 100

// cpuSeconds reads the user+system CPU time of a process, all threads.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(b))
}

func parseStatCPU(stat string) (float64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc/PID/stat")
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3, state
	if len(f) < 13 {
		return 0, errors.New("short /proc/PID/stat")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("parsing /proc/PID/stat: %w", err)
	}
	return float64(utime+stime) / clockTicks, nil
}

// memory is a process's resident set size, in MB (10^6 bytes).
type memory struct {
	RSSMB  float64 `json:"rss_mb"`
	PeakMB float64 `json:"peak_rss_mb"` // VmHWM
}

func readMemory(pid int) (memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	return parseStatusMemory(string(b))
}

func parseStatusMemory(status string) (memory, error) {
	var m memory
	found := 0
	sc := bufio.NewScanner(strings.NewReader(status))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[2] != "kB" || (f[0] != "VmRSS:" && f[0] != "VmHWM:") {
			continue
		}
		kb, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return m, fmt.Errorf("parsing %s: %w", f[0], err)
		}
		mb := float64(kb) * 1024 / 1e6
		if f[0] == "VmRSS:" {
			m.RSSMB = mb
		} else {
			m.PeakMB = mb
		}
		found++
	}
	if found != 2 {
		return m, errors.New("no VmRSS or VmHWM in /proc/PID/status")
	}
	return m, nil
}

// findPID returns the one process in namespace ns whose command line
// matches.
func findPID(ctx context.Context, ns string, match func(argv []string) bool) (int, error) {
	out, err := run(ctx, "ip", "netns", "pids", ns)
	if err != nil {
		return 0, err
	}
	var found []int
	for _, f := range strings.Fields(out) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue // it ended
		}
		if match(strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")) {
			found = append(found, pid)
		}
	}
	if len(found) != 1 {
		return 0, fmt.Errorf("%d matching processes in %s, want 1", len(found), ns)
	}
	return found[0], nil
}

// latency is a summary of connect or round-trip samples.
type latency struct {
	N          int     `json:"n"`
	Failures   int     `json:"failures"`
	FirstError string  `json:"first_error,omitempty"`
	P50us      float64 `json:"p50_us"`
	P90us      float64 `json:"p90_us"`
	P99us      float64 `json:"p99_us"`
	MaxUs      float64 `json:"max_us"`
	MeanUs     float64 `json:"mean_us"`
}

func summarize(s samplesOut) latency {
	l := latency{N: len(s.Samples), Failures: s.Failures, FirstError: s.FirstError}
	if len(s.Samples) == 0 {
		return l
	}
	us := make([]float64, len(s.Samples))
	sum := 0.0
	for i, ns := range s.Samples {
		us[i] = float64(ns) / 1e3
		sum += us[i]
	}
	slices.Sort(us)
	l.P50us, l.P90us, l.P99us = percentile(us, 0.50), percentile(us, 0.90), percentile(us, 0.99)
	l.MaxUs, l.MeanUs = us[len(us)-1], sum/float64(len(us))
	return l
}

// percentile is the nearest-rank q-quantile of sorted values.
func percentile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// median of values (the mean of the two middle ones for an even count).
func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

// runChild runs this test binary in ns in one of the client modes and
// returns its samples.
func runChild(ctx context.Context, exe, ns, mode, target string, n, warmup int) (samplesOut, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(n+warmup)*ioTimeout+30*time.Second)
	defer cancel()
	out, err := nsOutput(ctx, ns, "env", modeEnv+"="+mode, addrEnv+"="+target,
		countEnv+"="+strconv.Itoa(n), warmupEnv+"="+strconv.Itoa(warmup), exe)
	if err != nil {
		return samplesOut{}, err
	}
	var s samplesOut
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		return s, fmt.Errorf("parsing %s samples: %w", mode, err)
	}
	return s, nil
}
