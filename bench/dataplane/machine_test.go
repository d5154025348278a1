package dataplane

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

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
