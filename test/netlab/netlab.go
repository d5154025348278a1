package netlab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Namespace roles, as the topology names them.
const (
	Inet    = "inet"
	Coord   = "coord"
	SiteGW  = "sitegw"
	Conn    = "conn"
	LANHost = "lanhost"
	HomeGW  = "homegw"
	Laptop  = "laptop"
)

// Addresses of the topology.
const (
	CoordIP   = "198.51.100.10"
	SiteWAN   = "198.51.100.20"
	HomeWAN   = "198.51.100.30"
	SiteLANGW = "192.168.0.1"
	ConnIP    = "192.168.0.2"
	LANHostIP = "192.168.0.10"
	// The site's second LAN prefix: sitegw is 192.168.1.1 on the same
	// bridge and lanhost also answers at LAN2HostIP.
	SiteLAN2GW = "192.168.1.1"
	LAN2HostIP = "192.168.1.10"
	HomeLANGW  = "10.1.0.1"
	LaptopIP   = "10.1.0.2"
)

var roles = []string{Inet, Coord, SiteGW, Conn, LANHost, HomeGW, Laptop}

// Lab is one built topology.
type Lab struct {
	prefix string

	mu    sync.Mutex // guards procs, etcDirs and dirs
	procs []*Proc
	// etcDirs are the /etc/netns/NS directories UseResolver and
	// AddAccounts made.
	etcDirs []string
	// dirs are the directories sharedDir made.
	dirs []string
}

// Available reports why the lab cannot be built here, or nil.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("network namespaces need root")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is not installed (make deps installs it)", tool)
		}
	}
	return nil
}

// New builds the topology. On error, whatever was built is removed.
func New(ctx context.Context) (l *Lab, err error) {
	if err := Available(); err != nil {
		return nil, err
	}
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	l = &Lab{prefix: "w" + hex.EncodeToString(b)}
	defer func() {
		if err != nil {
			l.Close()
			l = nil
		}
	}()
	for _, r := range roles {
		if err := run(ctx, "ip", "netns", "add", l.NS(r)); err != nil {
			return nil, err
		}
		if err := l.ip(ctx, r, "link", "set", "lo", "up"); err != nil {
			return nil, err
		}
	}
	steps := [][]string{
		// The internet: a bridge in inet, one veth per edge host.
		{Inet, "link", "add", "br0", "type", "bridge"},
		{Inet, "link", "set", "br0", "up"},
	}
	for _, s := range steps {
		if err := l.ip(ctx, s[0], s[1:]...); err != nil {
			return nil, err
		}
	}
	wan := []struct{ ns, addr string }{{Coord, CoordIP}, {SiteGW, SiteWAN}, {HomeGW, HomeWAN}}
	for _, w := range wan {
		if err := l.link(ctx, w.ns, "wan0", Inet, "to-"+w.ns); err != nil {
			return nil, err
		}
		for _, s := range [][]string{
			{Inet, "link", "set", "to-" + w.ns, "master", "br0"},
			{Inet, "link", "set", "to-" + w.ns, "up"},
			{w.ns, "addr", "add", w.addr + "/24", "dev", "wan0"},
			{w.ns, "link", "set", "wan0", "up"},
		} {
			if err := l.ip(ctx, s[0], s[1:]...); err != nil {
				return nil, err
			}
		}
	}
	// The site LAN: a bridge in sitegw with the connector and lanhost on it.
	for _, s := range [][]string{
		{SiteGW, "link", "add", "lan0", "type", "bridge"},
		{SiteGW, "addr", "add", SiteLANGW + "/24", "dev", "lan0"},
		{SiteGW, "addr", "add", SiteLAN2GW + "/24", "dev", "lan0"},
		{SiteGW, "link", "set", "lan0", "up"},
	} {
		if err := l.ip(ctx, s[0], s[1:]...); err != nil {
			return nil, err
		}
	}
	for _, h := range []struct{ ns, addr string }{{Conn, ConnIP}, {LANHost, LANHostIP}} {
		if err := l.link(ctx, h.ns, "eth0", SiteGW, "to-"+h.ns); err != nil {
			return nil, err
		}
		for _, s := range [][]string{
			{SiteGW, "link", "set", "to-" + h.ns, "master", "lan0"},
			{SiteGW, "link", "set", "to-" + h.ns, "up"},
			{h.ns, "addr", "add", h.addr + "/24", "dev", "eth0"},
			{h.ns, "link", "set", "eth0", "up"},
			{h.ns, "route", "add", "default", "via", SiteLANGW},
		} {
			if err := l.ip(ctx, s[0], s[1:]...); err != nil {
				return nil, err
			}
		}
	}
	if err := l.ip(ctx, LANHost, "addr", "add", LAN2HostIP+"/24", "dev", "eth0"); err != nil {
		return nil, err
	}
	// The home LAN: the laptop behind homegw.
	if err := l.link(ctx, Laptop, "eth0", HomeGW, "lan0"); err != nil {
		return nil, err
	}
	for _, s := range [][]string{
		{HomeGW, "addr", "add", HomeLANGW + "/24", "dev", "lan0"},
		{HomeGW, "link", "set", "lan0", "up"},
		{Laptop, "addr", "add", LaptopIP + "/24", "dev", "eth0"},
		{Laptop, "link", "set", "eth0", "up"},
		{Laptop, "route", "add", "default", "via", HomeLANGW},
	} {
		if err := l.ip(ctx, s[0], s[1:]...); err != nil {
			return nil, err
		}
	}
	// Both gateways forward and masquerade, and drop every new
	// connection from the internet.
	for _, gw := range []string{SiteGW, HomeGW} {
		if err := l.Run(ctx, gw, "sysctl", "-qw", "net.ipv4.ip_forward=1"); err != nil {
			return nil, err
		}
	}
	if err := l.nft(ctx, SiteGW, gatewayRules("warren_site")); err != nil {
		return nil, err
	}
	if err := l.nft(ctx, HomeGW, gatewayRules("warren_home")); err != nil {
		return nil, err
	}
	// The site LAN keeps each flow in order, as a real NIC does (see
	// SteerFlows for why only there).
	if err := SteerFlows(ctx, l.NS(SiteGW), "to-"+Conn, "to-"+LANHost); err != nil {
		return nil, err
	}
	return l, nil
}

// gatewayRules is what both gateways run, as a site's firewall or a home
// router would: masquerade the LAN out of wan0, and from wan0 accept only
// replies to connections the LAN opened. (On the home router the drop
// matters for direct paths too: without it, a packet to the router's own
// address and a port the laptop's mapping will want makes a conntrack
// entry that later forces masquerade onto another port.)
func gatewayRules(table string) string {
	return `
table inet ` + table + ` {
	chain input {
		type filter hook input priority 0; policy accept;
		iifname "wan0" ct state established,related accept
		iifname "wan0" drop
	}
	chain forward {
		type filter hook forward priority 0; policy accept;
		iifname "wan0" ct state established,related accept
		iifname "wan0" drop
	}
	chain postrouting {
		type nat hook postrouting priority 100; policy accept;
		oifname "wan0" masquerade
	}
}
`
}

// NS returns the namespace name of a role.
func (l *Lab) NS(role string) string { return l.prefix + "-" + role }

// link creates a veth pair between two namespaces, from inside the first.
func (l *Lab) link(ctx context.Context, ns, name, peerNS, peerName string) error {
	return run(ctx, "ip", "-n", l.NS(ns), "link", "add", name, "type", "veth", "peer", "name", peerName, "netns", l.NS(peerNS))
}

func (l *Lab) ip(ctx context.Context, role string, args ...string) error {
	return run(ctx, "ip", append([]string{"-n", l.NS(role)}, args...)...)
}

func (l *Lab) nft(ctx context.Context, role, rules string) error {
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", l.NS(role), "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft in %s: %v: %s", role, err, out)
	}
	return nil
}

// Command returns a command that runs in the role's namespace.
func (l *Lab) Command(ctx context.Context, role, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", l.NS(role), name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Run runs a command in the role's namespace and returns its error with
// its output.
func (l *Lab) Run(ctx context.Context, role, name string, args ...string) error {
	_, err := l.Output(ctx, role, name, args...)
	return err
}

// Output runs a command in the role's namespace and returns its stdout.
func (l *Lab) Output(ctx context.Context, role, name string, args ...string) (string, error) {
	return output(l.Command(ctx, role, name, args...), role, name, args)
}

// Proc is a long-running process started in a namespace.
type Proc struct {
	Name string
	cmd  *exec.Cmd
	out  *SyncBuffer
	done chan struct{}
	err  error
}

// Start starts a long-running command in the role's namespace. Close kills
// it. Its combined output is kept for Output.
func (l *Lab) Start(role, name string, args ...string) (*Proc, error) {
	return l.start(l.Command(context.Background(), role, name, args...), role, name)
}

// start starts cmd, a command of Command or CommandAs running name in
// role's namespace, as a Proc that Close stops.
func (l *Lab) start(cmd *exec.Cmd, role, name string) (*Proc, error) {
	p := &Proc{Name: role + ":" + name, cmd: cmd, out: &SyncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s in %s: %w", name, role, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	return p, nil
}

// Pid is the process's ID. Command's chain of programs (ip netns exec,
// setpriv, env) each execute the next in place, so it is the program's
// own.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Output is what the process printed so far.
func (p *Proc) Output() string { return p.out.String() }

// Exited reports whether the process has ended, and how.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Stop sends SIGTERM to the process group and waits up to 10 s, then kills.
func (p *Proc) Stop() error {
	if exited, err := p.Exited(); exited {
		return err
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	return p.err
}

// Signal sends sig to the process itself (not its group): SIGSTOP and
// SIGCONT freeze and thaw it as a suspended machine would.
func (p *Proc) Signal(sig syscall.Signal) error {
	return syscall.Kill(p.cmd.Process.Pid, sig)
}

// Kill sends SIGKILL to the process group and waits.
func (p *Proc) Kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// Close stops every process started in the lab and deletes the
// namespaces. It is safe to call more than once and on a partial lab.
func (l *Lab) Close() error {
	l.mu.Lock()
	procs := l.procs
	l.procs = nil
	l.mu.Unlock()
	for _, p := range procs {
		p.Stop()
	}
	var errs []error
	for _, r := range roles {
		ns := l.NS(r)
		// Anything still running inside (a daemon a test forgot) dies.
		if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
			for _, f := range strings.Fields(string(out)) {
				var pid int
				if _, err := fmt.Sscan(f, &pid); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		if err := exec.Command("ip", "netns", "del", ns).Run(); err != nil {
			if _, statErr := os.Stat("/run/netns/" + ns); statErr == nil {
				errs = append(errs, fmt.Errorf("deleting namespace %s: %w", ns, err))
			}
		}
	}
	if err := l.removeEtc(); err != nil {
		errs = append(errs, err)
	}
	l.mu.Lock()
	dirs := l.dirs
	l.dirs = nil
	l.mu.Unlock()
	for _, d := range dirs {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// sharedDir makes a directory under os.TempDir, mode 0755, that Close
// removes: for files that processes running as the lab's accounts must
// reach (a test's TempDir is 0700).
func (l *Lab) sharedDir(name string) (string, error) {
	dir, err := os.MkdirTemp("", l.prefix+"-"+name+"-")
	if err != nil {
		return "", err
	}
	l.mu.Lock()
	l.dirs = append(l.dirs, dir)
	l.mu.Unlock()
	return dir, os.Chmod(dir, 0o755)
}

func run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// SyncBuffer is a bytes.Buffer that a running command may write while
// another goroutine reads it.
type SyncBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Logger is the part of testing.TB that DumpOutputs needs.
type Logger interface {
	Logf(format string, args ...any)
}

// DumpOutputs logs what every started process printed, for a failed test.
func (l *Lab) DumpOutputs(t Logger) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.procs {
		out := p.Output()
		if len(out) > 8000 {
			out = "…" + out[len(out)-8000:]
		}
		t.Logf("=== %s ===\n%s", p.Name, out)
	}
}
