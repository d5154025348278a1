package dataplane

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

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
