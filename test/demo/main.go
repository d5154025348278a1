// Command demo runs Warren end to end on this machine, in the netlab
// topology of network namespaces: a coordinator on the "internet", a
// connector behind a site NAT that drops every inbound connection, a LAN
// host with sshd, HTTP and DNS, and a laptop whose daemon brings the tunnel
// up. It then prints what to type to try it, and on Ctrl-C removes
// everything. `make demo` runs it (as root).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/warrennet/warren/test/netlab"
)

func main() {
	bin := flag.String("warren", "bin/warren", "the warren binary")
	flag.Parse()
	if err := run(*bin); err != nil {
		fmt.Fprintln(os.Stderr, "demo: "+err.Error())
		os.Exit(1)
	}
}

func step(format string, args ...any) { fmt.Printf("• "+format+"\n", args...) }

func run(bin string) error {
	if err := netlab.Available(); err != nil {
		return fmt.Errorf("%v: run it as root (sudo make demo)", err)
	}
	bin, err := filepath.Abs(bin)
	if err != nil {
		return err
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("no warren binary at %s: run make build first", bin)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	dir, err := os.MkdirTemp("", "warren-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)

	step("building the network namespaces (coordinator, site NAT, connector, LAN host, home NAT, laptop)")
	lab, err := netlab.New(ctx)
	if err != nil {
		return err
	}
	defer func() {
		step("removing the namespaces")
		lab.Close()
	}()
	step("starting sshd, an HTTP server and DNS on lanhost %s", netlab.LANHostIP)
	lan, err := lab.StartLAN(ctx, filepath.Join(dir, "lan"), 1<<20)
	if err != nil {
		return err
	}
	w := func(role string, args ...string) (string, error) {
		out, err := lab.Output(ctx, role, bin, args...)
		return strings.TrimSpace(out), err
	}
	data := filepath.Join(dir, "coordinator")
	socket := filepath.Join(dir, "warren.sock")

	step("starting the coordinator at https://%s:8443", netlab.CoordIP)
	coord, err := lab.Start(netlab.Coord, bin, "coordinator", "--listen", netlab.CoordIP+":8443", "--data", data)
	if err != nil {
		return err
	}
	if err := wait(ctx, func() error { _, err := w(netlab.Coord, "--data", data, "nodes", "ls"); return err }); err != nil {
		return fmt.Errorf("coordinator did not start: %w\n%s", err, coord.Output())
	}
	connTok, err := w(netlab.Coord, "--data", data, "token", "create", "--role", "connector", "--name", "office")
	if err != nil {
		return err
	}
	step("starting the connector in the site LAN (%s), as user nobody, dialing out only", netlab.ConnIP)
	connState := filepath.Join(dir, "connector")
	os.MkdirAll(connState, 0o700)
	os.Chown(connState, 65534, 65534)
	lab.Run(ctx, netlab.Conn, "sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647")
	conn, err := lab.Start(netlab.Conn, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", bin, "connector", "--token", connTok, "--state", connState)
	if err != nil {
		return err
	}
	if err := wait(ctx, func() error {
		out, err := w(netlab.Coord, "--data", data, "routes", "add", "192.168.0.0/24", "--connector", "office", "--comment", "site LAN")
		if err != nil {
			return fmt.Errorf("%v %s", err, out)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("routing 192.168.0.0/24 to the connector: %w\n%s", err, conn.Output())
	}
	step("routed 192.168.0.0/24 to connector office")

	step("starting the laptop daemon and running warren up")
	daemon, err := lab.Start(netlab.Laptop, bin, "daemon", "--state", filepath.Join(dir, "laptop"), "--socket", socket)
	if err != nil {
		return err
	}
	clientTok, err := w(netlab.Coord, "--data", data, "token", "create", "--role", "client", "--name", "laptop")
	if err != nil {
		return err
	}
	if err := wait(ctx, func() error { _, err := w(netlab.Laptop, "--socket", socket, "status"); return err }); err != nil {
		return fmt.Errorf("daemon did not start: %w\n%s", err, daemon.Output())
	}
	out, err := w(netlab.Laptop, "--socket", socket, "up", "--token", clientTok)
	fmt.Println(indent(out))
	if err != nil {
		return fmt.Errorf("warren up: %w\n%s\n%s", err, daemon.Output(), conn.Output())
	}
	ssh := append([]string{"ip", "netns", "exec", lab.NS(netlab.Laptop), "ssh"}, lan.SSHArgs("hostname")...)
	step("from the laptop: %s", strings.Join(ssh, " "))
	if out, err := lab.Output(ctx, netlab.Laptop, "ssh", lan.SSHArgs("hostname")...); err != nil {
		return fmt.Errorf("ssh through Warren: %w", err)
	} else {
		fmt.Println(indent(strings.TrimSpace(out)))
	}

	fmt.Printf(`
Warren is up. In another terminal, as root, try:

  %s
  ip netns exec %s curl http://%s:%s/
  ip netns exec %s dig @%s %s
  ip netns exec %s ping -c 3 %s
  ip netns exec %s %s --socket %s status
  ip netns exec %s %s --data %s routes ls

Ctrl-C stops everything and removes the namespaces.
`, strings.Join(ssh[:len(ssh)-1], " "),
		lab.NS(netlab.Laptop), netlab.LANHostIP, netlab.HTTPPort,
		lab.NS(netlab.Laptop), netlab.LANHostIP, netlab.LANName,
		lab.NS(netlab.Laptop), netlab.LANHostIP,
		lab.NS(netlab.Laptop), bin, socket,
		lab.NS(netlab.Coord), bin, data)
	<-ctx.Done()
	fmt.Println()
	return nil
}

// wait retries f for up to 20 s.
func wait(ctx context.Context, f func() error) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.New("interrupted")
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func indent(s string) string { return "    " + strings.ReplaceAll(s, "\n", "\n    ") }
