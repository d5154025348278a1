package dataplane

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

	"github.com/warrennet/warren/test/netlab"
)

// nsCommand returns a command that runs name in the network namespace ns.
// It gets its own process group, so a Ctrl-C at the terminal reaches only
// the benchmark, which then stops everything in order; the end of ctx
// kills the whole group.
func nsCommand(ctx context.Context, ns, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// nsOutput runs name in ns and returns its standard output; the error
// carries its standard error.
func nsOutput(ctx context.Context, ns, name string, args ...string) (string, error) {
	cmd := nsCommand(ctx, ns, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s in %s: %w: %s", name, strings.Join(args, " "), ns, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// run runs a command in the root namespace (ip netns add/del, go build,
// wg genkey: nothing that makes a device, address or route there).
func run(ctx context.Context, name string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// proc is a long-running process in a namespace.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  netlab.SyncBuffer
	done chan struct{}
	err  error // set before done is closed
}

// procs owns the long-running processes the benchmark starts; stopAll
// stops them, newest first.
type procs struct {
	mu   sync.Mutex // guards list
	list []*proc
}

// start starts name in ns, keeping its combined output.
func (ps *procs) start(ns, name string, args ...string) (*proc, error) {
	cmd := nsCommand(context.Background(), ns, name, args...)
	p := &proc{name: ns + ": " + name + " " + strings.Join(args, " "), cmd: cmd, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &p.out, &p.out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s in %s: %w", name, ns, err)
	}
	go p.wait()
	ps.mu.Lock()
	ps.list = append(ps.list, p)
	ps.mu.Unlock()
	return p, nil
}

func (p *proc) wait() {
	p.err = p.cmd.Wait()
	close(p.done)
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group, waits up to 5 s, then kills it.
func (p *proc) stop() {
	if p.exited() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// waitOutput waits up to d for the process to print want.
func (p *proc) waitOutput(ctx context.Context, want string, d time.Duration) error {
	return poll(ctx, d, func() error {
		if strings.Contains(p.out.String(), want) {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s exited (%v): %s", p.name, p.err, tail(p.out.String(), 500))
		}
		return fmt.Errorf("%s has not printed %q", p.name, want)
	})
}

func (ps *procs) stopAll() {
	ps.mu.Lock()
	list := ps.list
	ps.list = nil
	ps.mu.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		list[i].stop()
	}
}

// poll calls f every 100 ms until it succeeds, d passes or ctx ends, and
// returns its last error.
func poll(ctx context.Context, d time.Duration, f func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", d, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// Addresses of the anchor pair: a veth between two namespaces, and the
// stock wireguard-go tunnel over it.
const (
	pairA       = "a" // the iperf3 client side
	pairB       = "b" // the iperf3 server side
	vethA       = "10.98.0.1"
	vethB       = "10.98.0.2"
	tunA        = "10.99.0.1"
	tunB        = "10.99.0.2"
	wgPort      = "51820"
	tunnelMTU   = 1280 // Warren's default on both the client and the connector
	uapiSockDir = "/var/run/wireguard"
)

// pair is the anchor topology: namespaces PREFIX-a and PREFIX-b joined by
// a veth (eth0 in each, created inside them), and later stock wireguard-go
// on a TUN in each.
type pair struct {
	prefix string
	procs  *procs
	socks  []string // UAPI sockets wireguard-go creates, removed by Close
	// madeSockDir is set when uapiSockDir did not exist before wireguard-go
	// made it; Close then removes it if it is empty.
	madeSockDir bool
	// third is set once namespace c exists (startNaive).
	third bool
}

// newPair builds the two namespaces and the veth. On error, whatever was
// built is removed.
func newPair(ctx context.Context, ps *procs) (p *pair, err error) {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	p = &pair{prefix: "wd" + hex.EncodeToString(b), procs: ps}
	defer func() {
		if err != nil {
			p.Close()
			p = nil
		}
	}()
	for _, side := range []string{pairA, pairB} {
		if _, err := run(ctx, "ip", "netns", "add", p.ns(side)); err != nil {
			return nil, err
		}
		if _, err := run(ctx, "ip", "-n", p.ns(side), "link", "set", "lo", "up"); err != nil {
			return nil, err
		}
	}
	for _, s := range [][]string{
		{"-n", p.ns(pairA), "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", p.ns(pairB)},
		{"-n", p.ns(pairA), "addr", "add", vethA + "/24", "dev", "eth0"},
		{"-n", p.ns(pairB), "addr", "add", vethB + "/24", "dev", "eth0"},
		{"-n", p.ns(pairA), "link", "set", "eth0", "up"},
		{"-n", p.ns(pairB), "link", "set", "eth0", "up"},
	} {
		if _, err := run(ctx, "ip", s...); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// ns is the namespace name of a side.
func (p *pair) ns(side string) string { return p.prefix + "-" + side }

// ifname is the name of a side's wireguard-go TUN. It is unique per run
// because wireguard-go's UAPI socket lives in the shared file system.
func (p *pair) ifname(side string) string { return p.prefix + side }

// startWireGuard runs stock wireguard-go (bin) in both namespaces, keys
// and peers them over the veth, gives the TUNs tunA and tunB with
// tunnelMTU, and waits for a handshake. Keys are written to dir.
func (p *pair) startWireGuard(ctx context.Context, bin, dir string) error {
	type side struct{ name, addr, peerVeth, peerTun string }
	sides := []side{{pairA, tunA, vethB, tunB}, {pairB, tunB, vethA, tunA}}
	if _, err := os.Stat(uapiSockDir); errors.Is(err, os.ErrNotExist) {
		p.madeSockDir = true
	}
	keys := map[string]string{}
	pubs := map[string]string{}
	for _, s := range sides {
		priv, pub, err := genKey(ctx)
		if err != nil {
			return err
		}
		keys[s.name] = dir + "/wg-" + s.name + ".key"
		if err := os.WriteFile(keys[s.name], []byte(priv), 0o600); err != nil {
			return err
		}
		pubs[s.name] = pub
	}
	for _, s := range sides {
		ifname := p.ifname(s.name)
		sock := uapiSockDir + "/" + ifname + ".sock"
		p.socks = append(p.socks, sock)
		wg, err := p.procs.start(p.ns(s.name), bin, "-f", ifname)
		if err != nil {
			return err
		}
		if err := poll(ctx, 10*time.Second, func() error {
			if wg.exited() {
				return fmt.Errorf("wireguard-go exited (%v): %s", wg.err, tail(wg.out.String(), 500))
			}
			_, err := os.Stat(sock)
			return err
		}); err != nil {
			return fmt.Errorf("waiting for wireguard-go in %s: %w", p.ns(s.name), err)
		}
		peer := pairB
		if s.name == pairB {
			peer = pairA
		}
		if _, err := nsOutput(ctx, p.ns(s.name), "wg", "set", ifname, "private-key", keys[s.name], "listen-port", wgPort,
			"peer", pubs[peer], "allowed-ips", s.peerTun+"/32", "endpoint", s.peerVeth+":"+wgPort); err != nil {
			return err
		}
		for _, a := range [][]string{
			{"addr", "add", s.addr + "/24", "dev", ifname},
			{"link", "set", ifname, "mtu", fmt.Sprint(tunnelMTU), "up"},
		} {
			if _, err := run(ctx, "ip", append([]string{"-n", p.ns(s.name)}, a...)...); err != nil {
				return err
			}
		}
	}
	return poll(ctx, 10*time.Second, func() error {
		_, err := nsOutput(ctx, p.ns(pairA), "ping", "-c", "1", "-W", "1", tunB)
		return err
	})
}

// genKey makes a WireGuard key pair with wg, in base64.
func genKey(ctx context.Context) (priv, pub string, err error) {
	if priv, err = run(ctx, "wg", "genkey"); err != nil {
		return "", "", err
	}
	priv = strings.TrimSpace(priv)
	cmd := exec.CommandContext(ctx, "wg", "pubkey")
	cmd.Stdin = strings.NewReader(priv)
	out, err := cmd.Output()
	if err != nil {
		return "", "", fmt.Errorf("wg pubkey: %w", err)
	}
	return priv, strings.TrimSpace(string(out)), nil
}

// Close kills what runs in the namespaces, deletes them and removes the
// UAPI sockets wireguard-go left. It is safe on a partial pair.
func (p *pair) Close() error {
	var errs []error
	sides := []string{pairA, pairB}
	if p.third {
		sides = append(sides, pairC)
	}
	for _, side := range sides {
		ns := p.ns(side)
		killNamespace(ns)
		if err := exec.Command("ip", "netns", "del", ns).Run(); err != nil {
			if _, statErr := os.Stat("/run/netns/" + ns); statErr == nil {
				errs = append(errs, fmt.Errorf("deleting namespace %s: %w", ns, err))
			}
		}
	}
	for _, s := range p.socks {
		if err := os.Remove(s); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if p.madeSockDir {
		_ = os.Remove(uapiSockDir) // only if empty: another wireguard-go may use it
	}
	return errors.Join(errs...)
}

// killNamespace kills every process still running in ns.
func killNamespace(ns string) {
	out, err := exec.Command("ip", "netns", "pids", ns).Output()
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(out)) {
		var pid int
		if _, err := fmt.Sscan(f, &pid); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}
