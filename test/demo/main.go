// Command demo runs Warren end to end on this machine, in the netlab
// topology of network namespaces: a coordinator on the "internet", a
// connector behind a site NAT that drops every inbound connection, a LAN
// host with sshd, HTTP and DNS, and a laptop whose daemon brings the tunnel
// up. It then prints what to type to try it, and on Ctrl-C removes
// everything. `make demo` runs it (as root).
package main

import (
	"context"
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
	relayOnly := flag.Bool("relay-only", false, "keep the laptop and the connector on the relay path (no direct path)")
	flag.Parse()
	if err := run(*bin, netlab.Options{RelayOnly: *relayOnly}); err != nil {
		fmt.Fprintln(os.Stderr, "demo: "+err.Error())
		os.Exit(1)
	}
}

func step(format string, args ...any) { fmt.Printf("• "+format+"\n", args...) }

func run(bin string, opts netlab.Options) error {
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
	step("starting the coordinator at https://%s:8443, the connector as user nobody behind the site NAT (dialing out only), and the laptop daemon", netlab.CoordIP)
	w, err := lab.DeployWarrenWith(ctx, bin, filepath.Join(dir, "warren"), opts)
	if err != nil {
		return err
	}
	step("routed 192.168.0.0/24 to connector office; running warren up on the laptop")
	tok, err := w.Admin(ctx, "token", "create", "--role", "client", "--name", "laptop")
	if err != nil {
		return err
	}
	out, err := w.Up(ctx, tok) // warren up --token-file FILE
	fmt.Println(indent(out))
	if err != nil {
		return fmt.Errorf("warren up: %w\n%s\n%s", err, w.Daemon.Output(), w.Conn.Output())
	}
	ssh := append([]string{"ip", "netns", "exec", lab.NS(netlab.Laptop), "ssh"}, lan.SSHArgs("hostname")...)
	step("from the laptop: %s", strings.Join(ssh, " "))
	if out, err := lab.Output(ctx, netlab.Laptop, "ssh", lan.SSHArgs("hostname")...); err != nil {
		return fmt.Errorf("ssh through Warren: %w", err)
	} else {
		fmt.Println(indent(strings.TrimSpace(out)))
	}

	// The ssh was the traffic that made the nodes look for a direct
	// path; it is usually up by now.
	time.Sleep(500 * time.Millisecond)
	step("warren status on the laptop (the path is \"direct\" once laptop and connector have punched through both NATs, \"relay\" until then)")
	if st, err := w.Laptop(ctx, "status"); err == nil {
		fmt.Println(indent(st))
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
		lab.NS(netlab.Laptop), bin, w.Socket,
		lab.NS(netlab.Coord), bin, w.Data)
	<-ctx.Done()
	fmt.Println()
	return nil
}

func indent(s string) string { return "    " + strings.ReplaceAll(s, "\n", "\n    ") }
