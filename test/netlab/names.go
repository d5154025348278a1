package netlab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DNSIP is the internet's name server, on inet's bridge, when ServeNames
// started it.
const DNSIP = "198.51.100.53"

// netnsEtc is where `ip netns exec NS` finds the files it bind-mounts
// over /etc for NS (resolv.conf, hosts). Only processes it starts see
// them; a setns from Go would not.
const netnsEtc = "/etc/netns"

// ServeNames starts a name server on the internet (DNSIP, a dnsmasq in
// inet) answering each name with its IPv4 address, and waits until it
// answers. Close stops it. Namespaces use it once UseResolver says so.
func (l *Lab) ServeNames(ctx context.Context, dir string, names map[string]string) (*Proc, error) {
	if len(names) == 0 {
		return nil, errors.New("no names to serve")
	}
	if err := l.ip(ctx, Inet, "addr", "add", DNSIP+"/24", "dev", "br0"); err != nil {
		return nil, err
	}
	args := []string{"--keep-in-foreground", "--no-resolv", "--no-hosts", "--bind-interfaces",
		"--listen-address=" + DNSIP, "--user=root", "--pid-file=" + filepath.Join(dir, "names-dnsmasq.pid"), "--log-facility=-"}
	var first string
	for name, addr := range names {
		args = append(args, "--address=/"+name+"/"+addr)
		first = name
	}
	p, err := l.Start(Inet, "dnsmasq", args...)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := l.Output(ctx, Coord, "dig", "+short", "+time=1", "+tries=1", "@"+DNSIP, first)
		if err == nil && strings.TrimSpace(out) == names[first] {
			return p, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("name server not answering %s after 10s: %q, %v\n%s", first, out, err, p.Output())
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// UseResolver makes the processes the lab starts in role's namespace
// from now on resolve names with the name server at addr: it writes
// /etc/netns/NS/resolv.conf, which Close removes.
func (l *Lab) UseResolver(role, addr string) error {
	return l.writeEtc(role, "resolv.conf", []byte("nameserver "+addr+"\noptions timeout:1 attempts:2\n"))
}

// writeEtc writes /etc/netns/NS/name, which `ip netns exec` mounts over
// /etc/name for what the lab starts in role's namespace; Close removes it.
func (l *Lab) writeEtc(role, name string, b []byte) error {
	dir := filepath.Join(netnsEtc, l.NS(role))
	l.mu.Lock()
	l.etcDirs = append(l.etcDirs, dir)
	l.mu.Unlock()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name), b, 0o644)
}

// removeEtc removes the /etc/netns/NS directories UseResolver made, and
// /etc/netns itself once empty.
func (l *Lab) removeEtc() error {
	l.mu.Lock()
	dirs := l.etcDirs
	l.etcDirs = nil
	l.mu.Unlock()
	var errs []error
	for _, d := range dirs {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, err)
		}
	}
	if len(dirs) > 0 {
		os.Remove(netnsEtc) // fails, harmlessly, while other labs use it
	}
	return errors.Join(errs...)
}

// AddHosts makes the processes the lab starts in role's namespace from
// now on find each name of names at its address in /etc/hosts, as a
// machine's own hosts file would have it: it writes /etc/netns/NS/hosts
// (the host's /etc/hosts plus one line per name), which Close removes.
func (l *Lab) AddHosts(role string, names map[string]string) error {
	b, err := os.ReadFile("/etc/hosts")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		b = append(b, '\n')
	}
	for name, addr := range names {
		b = fmt.Appendf(b, "%s %s\n", addr, name)
	}
	return l.writeEtc(role, "hosts", b)
}
