package netlab

import (
	"context"
	"fmt"
	"math/big"
	"os/exec"
	"runtime"
	"slices"
	"strings"
)

// SteerFlows makes the veths devs in the namespace ns (its full name), or
// every veth there when devs is empty, keep each flow on one CPU, as a real
// NIC's receive-side scaling does.
//
// A veth hands a packet to the receiving side's backlog on the CPU that sent
// it. When the sending process moves between CPUs mid-flow, two backlogs
// hold parts of the same flow and deliver them out of order, and a TCP
// sender on the far side takes that reordering for loss. A physical NIC
// hashes each flow to one receive queue and never does this, so the lab
// would charge Warren for retransmits no real link causes. Receive packet
// steering (RPS) over all CPUs picks the backlog from the flow's hash
// instead, which restores a NIC's per-flow order and still spreads flows.
//
// The cost is a cross-CPU hand-off when the hash picks the other CPU: an
// idle vCPU takes tens of microseconds to wake. The labs therefore steer
// only where TCP senders put their segments straight onto a veth: the site
// LAN's bridge ports, which receive from lanhost and from the connector's
// real sockets. (Steering every veth, tunnel legs included, added 30–70 µs
// to each round trip through the relay.) The other way to keep the order,
// GRO on the veth, which puts it in NAPI mode, overflows its 256-packet
// ring at veth speeds: 0.9 % retransmits on the bare veth, and the LAN leg
// still reordered.
func SteerFlows(ctx context.Context, ns string, devs ...string) error {
	out, err := exec.CommandContext(ctx, "ip", "-n", ns, "-o", "link", "show", "type", "veth").Output()
	if err != nil {
		return fmt.Errorf("listing veths in %s: %v", ns, err)
	}
	mask := cpuMask(runtime.NumCPU())
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		dev, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if len(devs) > 0 && !slices.Contains(devs, dev) {
			continue
		}
		script := `for q in /sys/class/net/"$1"/queues/rx-*/rps_cpus; do echo "$2" > "$q" || exit 1; done`
		if out, err := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "sh", "-c", script, "sh", dev, mask).CombinedOutput(); err != nil {
			return fmt.Errorf("steering flows on %s in %s: %v: %s", dev, ns, err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// cpuMask is the sysfs CPU mask of CPUs 0..n-1: hexadecimal, in groups of
// 32 bits separated by commas, as rps_cpus takes it.
func cpuMask(n int) string {
	m := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), uint(n)), big.NewInt(1))
	h := m.Text(16)
	var groups []string
	for len(h) > 8 {
		groups = append([]string{h[len(h)-8:]}, groups...)
		h = h[:len(h)-8]
	}
	return strings.Join(append([]string{h}, groups...), ",")
}
