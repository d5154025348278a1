//go:build linux

package platform

// The harness for tests that change kernel state. Each such test runs its
// body in a network namespace it creates for itself and deletes afterwards,
// never in the namespace the test binary started in: the test re-executes
// its own binary under `ip netns exec`, and the child refuses to run unless
// it can prove it is inside that namespace and not init's.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

const (
	// netnsEnv, set in a re-executed child, names the namespace it runs in.
	netnsEnv = "WARREN_PLATFORM_TEST_NETNS"
	// startNetnsEnv, set in a child, identifies (dev:ino) the namespace the
	// test binary started in, which the child must not be in.
	startNetnsEnv = "WARREN_PLATFORM_TEST_START_NETNS"
	// roleEnv, set in a grandchild, says what the grandchild is for.
	roleEnv = "WARREN_PLATFORM_TEST_ROLE"
	// netnsPrefix starts the name of every namespace these tests create:
	// warren-plat-<pid>-<n>.
	netnsPrefix = "warren-plat-"
	// childDone is printed by a child whose body ran to the end, so the
	// parent can tell a pass from a skip.
	childDone = "warren-platform-netns-child-done"
	// childTimeout bounds a child; the child's own -test.timeout is
	// shorter, so a hung child dumps its goroutines before it is killed.
	childTimeout = 2 * time.Minute
	// cmdTimeout bounds every other command.
	cmdTimeout = 15 * time.Second
)

var (
	netnsSeq  atomic.Int64
	sweepOnce sync.Once
)

// inNetns runs body in a fresh network namespace. In the test process it
// creates warren-plat-<pid>-<n>, runs this same test in a child process
// inside it, and deletes it in t.Cleanup, which runs even when the test
// fails or panics; a namespace left by a run that was killed outright is
// deleted by the next run (sweepStale). In the child it checks where it is
// and runs body. It skips unless run as root with ip(8) and /dev/net/tun.
func inNetns(t *testing.T, body func(t *testing.T)) {
	t.Helper()
	if ns := os.Getenv(netnsEnv); ns != "" {
		requireNetns(t, ns)
		body(t)
		if !t.Failed() && !t.Skipped() {
			fmt.Println(childDone)
		}
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("skipping: creating a network namespace needs root (this test never changes the root namespace); run go test as root to include it")
	}
	ip, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("skipping: needs the ip command (iproute2) to create a network namespace")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skipf("skipping: needs /dev/net/tun: %v", err)
	}
	t.Parallel() // each test has a namespace of its own
	// Not /proc/self/exe: under `ip netns exec` that would name ip itself.
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("finding the test binary: %v", err)
	}
	start, err := nsID("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	sweepOnce.Do(func() { sweepStale(t, ip) })

	name := fmt.Sprintf("%s%d-%d", netnsPrefix, os.Getpid(), netnsSeq.Add(1))
	if out, err := command(ip, "netns", "add", name); err != nil {
		t.Fatalf("ip netns add %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := command(ip, "netns", "delete", name); err != nil {
			t.Errorf("ip netns delete %s: %v\n%s", name, err, out)
		}
		if _, err := os.Stat(filepath.Join("/run/netns", name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("namespace %s still exists after deletion (stat: %v)", name, err)
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), childTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, ip, "netns", "exec", name, exe,
		"-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v",
		"-test.timeout="+(childTimeout-15*time.Second).String())
	cmd.Env = append(os.Environ(), netnsEnv+"="+name, startNetnsEnv+"="+start.String())
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	t.Logf("child in namespace %s:\n%s", name, indent(out))
	if err != nil {
		t.Fatalf("child in namespace %s: %v", name, err)
	}
	if !bytes.Contains(out, []byte(childDone)) {
		t.Fatalf("child in namespace %s did not run its body to the end", name)
	}
}

// requireNetns fails the test unless this process is in the namespace
// /run/netns/name and not in the one the test binary started in (nor in
// init's, when that can be read): the last guard between a test and the
// machine's real network configuration.
func requireNetns(t *testing.T, name string) {
	t.Helper()
	self, err := nsID("/proc/self/ns/net")
	if err != nil {
		t.Fatalf("refusing to run: %v", err)
	}
	want, err := nsID(filepath.Join("/run/netns", name))
	if err != nil {
		t.Fatalf("refusing to run: %v", err)
	}
	if self != want {
		t.Fatalf("refusing to run: in network namespace %v, want %s (%v)", self, name, want)
	}
	start := os.Getenv(startNetnsEnv)
	if start == "" || start == self.String() {
		t.Fatalf("refusing to run: network namespace %v is the one the test started in (%q)", self, start)
	}
	if root, err := nsID("/proc/1/ns/net"); err == nil && root == self {
		t.Fatalf("refusing to run: network namespace %v is init's", self)
	}
}

type nsKey struct{ dev, ino uint64 }

func (k nsKey) String() string { return fmt.Sprintf("%d:%d", k.dev, k.ino) }

func nsID(path string) (nsKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nsKey{}, fmt.Errorf("identifying network namespace: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nsKey{}, fmt.Errorf("identifying network namespace %s: no stat_t", path)
	}
	return nsKey{dev: uint64(st.Dev), ino: st.Ino}, nil
}

// sweepStale deletes namespaces these tests created in runs whose process
// is gone (killed before its cleanups ran).
func sweepStale(t *testing.T, ip string) {
	ents, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), netnsPrefix)
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			continue
		}
		if out, err := command(ip, "netns", "delete", e.Name()); err != nil {
			t.Logf("deleting stale namespace %s: %v\n%s", e.Name(), err, out)
		} else {
			t.Logf("deleted stale namespace %s", e.Name())
		}
	}
}

// runRole runs this test again in this namespace as a grandchild with the
// given role, and returns its exit code.
func runRole(t *testing.T, role string) int {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "-test.run=^"+t.Name()+"$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), roleEnv+"="+role)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	t.Logf("%s:\n%s", role, indent(out))
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("running %s: %v", role, err)
	}
	return 0
}

func command(name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 5 * time.Second
	return cmd.CombinedOutput()
}

// ipCmd runs ip with args and returns its output, failing the test on
// error.
func ipCmd(t *testing.T, args ...string) string {
	t.Helper()
	out, err := command("ip", args...)
	if err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func indent(b []byte) string {
	s := strings.TrimRight(string(b), "\n")
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// waitFor polls cond until it returns nil, failing the test with cond's
// last error after a deadline.
func waitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testLogger logs to t at debug level.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// ipRoutes is the golden view of the main table's routes through dev, as
// ip(8) shows them: one line per route, "dst proto P scope S metric M",
// IPv4 then IPv6, with only protocols listed (all when protos is empty).
func ipRoutes(t *testing.T, dev string, protos ...string) []string {
	t.Helper()
	var lines []string
	for _, fam := range []string{"-4", "-6"} {
		var rs []struct {
			Dst      string `json:"dst"`
			Protocol string `json:"protocol"`
			Scope    string `json:"scope"`
			Metric   uint32 `json:"metric"`
		}
		out := ipCmd(t, "-N", "-j", fam, "route", "show", "table", "main", "dev", dev)
		if err := json.Unmarshal([]byte(out), &rs); err != nil {
			t.Fatalf("parsing ip -j route output %q: %v", out, err)
		}
		for _, r := range rs {
			if len(protos) > 0 && !slices.Contains(protos, r.Protocol) {
				continue
			}
			dst := r.Dst
			if !strings.Contains(dst, "/") && dst != "default" {
				a := netip.MustParseAddr(dst)
				dst = netip.PrefixFrom(a, a.BitLen()).String()
			}
			line := fmt.Sprintf("%s proto %s", dst, r.Protocol)
			if r.Scope != "" {
				line += " scope " + r.Scope
			}
			lines = append(lines, line+fmt.Sprintf(" metric %d", r.Metric))
		}
	}
	slices.Sort(lines)
	return lines
}

// warrenRoutes is ipRoutes for Warren's own routes.
func warrenRoutes(t *testing.T, dev string) []string {
	t.Helper()
	return ipRoutes(t, dev, strconv.Itoa(RouteProtocol))
}

// ipAddrs lists dev's global addresses as ip(8) shows them, sorted.
func ipAddrs(t *testing.T, dev string) []string {
	t.Helper()
	var links []struct {
		AddrInfo []struct {
			Local     string `json:"local"`
			Prefixlen int    `json:"prefixlen"`
			Scope     string `json:"scope"`
		} `json:"addr_info"`
	}
	out := ipCmd(t, "-j", "addr", "show", "dev", dev)
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		t.Fatalf("parsing ip -j addr output %q: %v", out, err)
	}
	var addrs []string
	for _, l := range links {
		for _, a := range l.AddrInfo {
			if a.Scope == "global" {
				addrs = append(addrs, fmt.Sprintf("%s/%d", a.Local, a.Prefixlen))
			}
		}
	}
	slices.Sort(addrs)
	return addrs
}

// checkState compares dev's Warren routes and global addresses with want.
func checkState(t *testing.T, when, dev string, wantRoutes, wantAddrs []string) {
	t.Helper()
	wantRoutes, wantAddrs = slices.Sorted(slices.Values(wantRoutes)), slices.Sorted(slices.Values(wantAddrs))
	if d := cmp.Diff(wantRoutes, warrenRoutes(t, dev)); d != "" {
		t.Errorf("%s: routes via %s (-want +got):\n%s", when, dev, d)
	}
	if d := cmp.Diff(wantAddrs, ipAddrs(t, dev)); d != "" {
		t.Errorf("%s: addresses of %s (-want +got):\n%s", when, dev, d)
	}
}

// sentinel is the unreachable route monitor.stop adds and removes to mark
// the end of what it records.
var sentinel = netip.MustParsePrefix("198.18.0.0/24")

// monitor records the rtnetlink notifications for one interface that
// concern Warren: changes to Warren's routes in the main table and to
// global addresses. One socket subscribes to all four groups, so the
// records keep the order in which the kernel made the changes, with one
// exception: Linux announces a new IPv6 address from a workqueue, after
// the request that added it has returned (deletions are announced at
// once).
type monitor struct {
	t      *testing.T
	s      *nl.NetlinkSocket
	index  int
	before map[netip.Prefix]bool // global IPv6 addresses at the start
}

func startMonitor(t *testing.T, link netlink.Link) *monitor {
	t.Helper()
	s, err := nl.Subscribe(unix.NETLINK_ROUTE,
		unix.RTNLGRP_IPV4_ROUTE, unix.RTNLGRP_IPV6_ROUTE, unix.RTNLGRP_IPV4_IFADDR, unix.RTNLGRP_IPV6_IFADDR)
	if err != nil {
		t.Fatalf("subscribing to rtnetlink: %v", err)
	}
	tv := unix.NsecToTimeval(int64(cmdTimeout))
	if err := s.SetReceiveTimeout(&tv); err != nil {
		s.Close()
		t.Fatalf("setting receive timeout: %v", err)
	}
	m := &monitor{t: t, s: s, index: link.Attrs().Index}
	m.before = m.addrs6()
	return m
}

// addrs6 returns the interface's global IPv6 addresses.
func (m *monitor) addrs6() map[netip.Prefix]bool {
	m.t.Helper()
	link, err := netlink.LinkByIndex(m.index)
	if err != nil {
		m.t.Fatal(err)
	}
	as, err := netlink.AddrList(link, netlink.FAMILY_V6)
	if err != nil {
		m.t.Fatalf("listing addresses: %v", err)
	}
	set := make(map[netip.Prefix]bool)
	for _, a := range as {
		if p, ok := ownedAddr(a); ok {
			set[p] = true
		}
	}
	return set
}

// record returns what f changed, as "add route 10.0.0.0/8 metric 0",
// "del addr 100.96.0.2/32" and so on, in order, followed by the sorted
// additions of IPv6 addresses, as "add addr fd7a::2/128 (async)".
func record(t *testing.T, link netlink.Link, f func()) []string {
	t.Helper()
	m := startMonitor(t, link)
	defer m.s.Close()
	f()
	return m.stop()
}

// stop marks the end with the sentinel route, reads every notification up
// to the sentinel's removal, then waits for the announcements of the IPv6
// addresses added since the start, so that none spills into the next
// recording. The kernel queues a change's notifications (except those) before
// the change's request returns, so all that f caused comes before the
// sentinel.
func (m *monitor) stop() []string {
	t := m.t
	t.Helper()
	// Unreachable: it needs no interface, so it works while ours is down.
	r := &netlink.Route{Dst: ipNet(sentinel), Type: unix.RTN_UNREACHABLE, Protocol: unix.RTPROT_STATIC}
	if err := netlink.RouteAdd(r); err != nil {
		t.Fatalf("adding sentinel route: %v", err)
	}
	if err := netlink.RouteDel(r); err != nil {
		t.Fatalf("removing sentinel route: %v", err)
	}
	pending := make(map[netip.Prefix]bool)
	for p := range m.addrs6() {
		if !m.before[p] {
			pending[p] = true
		}
	}
	var events, async []string
	for sentinelSeen := false; !sentinelSeen || len(pending) > 0; {
		msgs, _, err := m.s.Receive()
		if err != nil {
			t.Fatalf("reading rtnetlink notifications (so far %q, waiting for %v): %v", events, pending, err)
		}
		for _, msg := range msgs {
			ev, added6, gone := m.decode(msg)
			switch {
			case gone:
				sentinelSeen = true
			case added6.IsValid():
				delete(pending, added6)
				async = append(async, ev+" (async)")
			case ev != "" && !sentinelSeen:
				events = append(events, ev)
			case ev != "":
				t.Errorf("rtnetlink notification after the sentinel: %s", ev)
			}
		}
	}
	slices.Sort(async)
	return append(events, async...)
}

// decode describes msg when it concerns Warren. added6 is set for the
// addition of an IPv6 address; sentinelGone for the sentinel's removal.
func (m *monitor) decode(msg syscall.NetlinkMessage) (event string, added6 netip.Prefix, sentinelGone bool) {
	verb := map[uint16]string{unix.RTM_NEWROUTE: "add", unix.RTM_DELROUTE: "del", unix.RTM_NEWADDR: "add", unix.RTM_DELADDR: "del"}[msg.Header.Type]
	switch msg.Header.Type {
	case unix.RTM_NEWROUTE, unix.RTM_DELROUTE:
		rt := nl.DeserializeRtMsg(msg.Data)
		attrs, err := nl.ParseRouteAttr(msg.Data[rt.Len():])
		if err != nil || rt.Table != unix.RT_TABLE_MAIN {
			return "", netip.Prefix{}, false
		}
		var dst netip.Addr
		var oif int
		var metric uint32
		for _, a := range attrs {
			switch a.Attr.Type {
			case unix.RTA_DST:
				dst, _ = netip.AddrFromSlice(a.Value)
			case unix.RTA_OIF:
				oif = int(nl.NativeEndian().Uint32(a.Value))
			case unix.RTA_PRIORITY:
				metric = nl.NativeEndian().Uint32(a.Value)
			}
		}
		if !dst.IsValid() {
			return "", netip.Prefix{}, false
		}
		p := netip.PrefixFrom(dst, int(rt.Dst_len))
		if rt.Type == unix.RTN_UNREACHABLE && rt.Protocol == unix.RTPROT_STATIC && p == sentinel {
			return "", netip.Prefix{}, msg.Header.Type == unix.RTM_DELROUTE
		}
		if oif != m.index || rt.Protocol != RouteProtocol {
			return "", netip.Prefix{}, false
		}
		return verb + " route " + route{Prefix: p, Metric: metric}.String(), netip.Prefix{}, false
	case unix.RTM_NEWADDR, unix.RTM_DELADDR:
		ifa := nl.DeserializeIfAddrmsg(msg.Data)
		attrs, err := nl.ParseRouteAttr(msg.Data[ifa.Len():])
		if err != nil || int(ifa.Index) != m.index {
			return "", netip.Prefix{}, false
		}
		var addr netip.Addr
		for _, a := range attrs {
			if a.Attr.Type == unix.IFA_LOCAL || (a.Attr.Type == unix.IFA_ADDRESS && !addr.IsValid()) {
				addr, _ = netip.AddrFromSlice(a.Value)
			}
		}
		if !addr.IsGlobalUnicast() {
			return "", netip.Prefix{}, false
		}
		p := netip.PrefixFrom(addr, int(ifa.Prefixlen))
		if msg.Header.Type == unix.RTM_NEWADDR && addr.Is6() {
			added6 = p
		}
		return verb + " addr " + p.String(), added6, false
	}
	return "", netip.Prefix{}, false
}
