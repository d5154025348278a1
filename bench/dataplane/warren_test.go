package dataplane

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/warrennet/warren/test/netlab"
)

// warrenDeployment is Warren running in the netlab topology as the e2e
// tests deploy it: the coordinator (with its relay) in coord, the
// connector as user nobody in conn behind the site NAT, and the laptop
// daemon brought up with `warren up`, routing 192.168.0.0/24.
type warrenDeployment struct {
	lab       *netlab.Lab
	bin       string
	relayOnly bool   // the connector and the daemon run with --relay-only
	data      string // the coordinator's --data
	socket    string // the daemon's control socket
	coord     *proc
	conn      *proc
	daemon    *proc
	// UpOutput and Status are what `warren up` and `warren status` printed.
	UpOutput, Status string
}

// deployWarren starts the three roles in lab and brings the tunnel up.
// With relayOnly the connector and the daemon run with --relay-only, so
// every datagram goes through the relay; without it they look for a
// direct path once traffic flows (see waitDirect). dir is created and
// must be reachable by nobody (the connector's state lives in it).
func deployWarren(ctx context.Context, lab *netlab.Lab, ps *procs, bin, dir string, relayOnly bool) (*warrenDeployment, error) {
	d := &warrenDeployment{lab: lab, bin: bin, relayOnly: relayOnly, data: filepath.Join(dir, "coord"), socket: filepath.Join(dir, "warren.sock")}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	var err error
	if d.coord, err = ps.start(lab.NS(netlab.Coord), bin, "coordinator", "--listen", netlab.CoordIP+":8443", "--data", d.data); err != nil {
		return nil, err
	}
	if err := poll(ctx, 20*time.Second, func() error { _, err := d.admin(ctx, "nodes", "ls"); return err }); err != nil {
		return nil, fmt.Errorf("coordinator not serving: %w\n%s", err, tail(d.coord.out.String(), 2000))
	}
	connTok, err := d.admin(ctx, "token", "create", "--role", "connector", "--name", "office")
	if err != nil {
		return nil, err
	}
	// As netlab.DeployWarren does: a site's sysctl lets unprivileged
	// users ping, so the connector (as nobody) can answer the pings that
	// keep the direct path in use.
	if _, err := nsOutput(ctx, lab.NS(netlab.Conn), "sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647"); err != nil {
		return nil, err
	}
	connState := filepath.Join(dir, "connector")
	if err := os.MkdirAll(connState, 0o700); err != nil {
		return nil, err
	}
	if err := os.Chown(connState, 65534, 65534); err != nil {
		return nil, err
	}
	if d.conn, err = ps.start(lab.NS(netlab.Conn), "setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--",
		bin, "connector", "--token", connTok, "--state", connState}, d.relayOnlyFlag()...)...); err != nil {
		return nil, err
	}
	if err := poll(ctx, 20*time.Second, func() error {
		out, err := d.admin(ctx, "nodes", "ls", "--json")
		if err != nil {
			return err
		}
		var nodes []struct {
			Name   string `json:"name"`
			Online bool   `json:"online"`
		}
		if err := json.Unmarshal([]byte(out), &nodes); err != nil {
			return err
		}
		for _, n := range nodes {
			if n.Name == "office" && n.Online {
				return nil
			}
		}
		return fmt.Errorf("connector not online: %s", out)
	}); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, tail(d.conn.out.String(), 2000))
	}
	if _, err := d.admin(ctx, "routes", "add", "192.168.0.0/24", "--connector", "office", "--comment", "site LAN"); err != nil {
		return nil, err
	}
	if d.daemon, err = ps.start(lab.NS(netlab.Laptop), bin, append([]string{"daemon", "--state", filepath.Join(dir, "laptop"), "--socket", d.socket}, d.relayOnlyFlag()...)...); err != nil {
		return nil, err
	}
	if err := poll(ctx, 20*time.Second, func() error { _, err := d.laptop(ctx, "status"); return err }); err != nil {
		return nil, fmt.Errorf("daemon not answering: %w\n%s", err, tail(d.daemon.out.String(), 2000))
	}
	clientTok, err := d.admin(ctx, "token", "create", "--role", "client", "--name", "laptop")
	if err != nil {
		return nil, err
	}
	if d.UpOutput, err = d.laptop(ctx, "up", "--token", clientTok); err != nil {
		return nil, fmt.Errorf("warren up: %w\n%s\n%s", err, tail(d.daemon.out.String(), 2000), tail(d.conn.out.String(), 2000))
	}
	if d.Status, err = d.laptop(ctx, "status"); err != nil {
		return nil, err
	}
	return d, nil
}

// admin runs an admin command on the coordinator host.
func (d *warrenDeployment) admin(ctx context.Context, args ...string) (string, error) {
	out, err := nsOutput(ctx, d.lab.NS(netlab.Coord), d.bin, append([]string{"--data", d.data}, args...)...)
	return strings.TrimSpace(out), err
}

// laptop runs a user command against the laptop's daemon.
func (d *warrenDeployment) laptop(ctx context.Context, args ...string) (string, error) {
	out, err := nsOutput(ctx, d.lab.NS(netlab.Laptop), d.bin, append([]string{"--socket", d.socket}, args...)...)
	return strings.TrimSpace(out), err
}

// relayOnlyFlag is the flag the connector and the daemon get, if any.
func (d *warrenDeployment) relayOnlyFlag() []string {
	if d.relayOnly {
		return []string{"--relay-only"}
	}
	return nil
}

// route returns how `warren status` on the laptop says the site LAN is
// reached now: "relay", "direct ADDR:PORT", or "" (see routeVia).
func (d *warrenDeployment) route(ctx context.Context) (string, error) {
	st, err := d.laptop(ctx, "status")
	if err != nil {
		return "", err
	}
	return routeVia(st), nil
}

// waitDirect waits up to wait for `warren status` on the laptop to show
// the route via a direct path, pinging lanhost meanwhile:
// discovery runs only for peers in use. It returns the path ("direct
// ADDR:PORT") and the last status.
func (d *warrenDeployment) waitDirect(ctx context.Context, wait time.Duration) (path, status string, err error) {
	err = poll(ctx, wait, func() error {
		// Traffic, not a check: a ping the connector cannot answer
		// still keeps the peer in use.
		_, _ = nsOutput(ctx, d.lab.NS(netlab.Laptop), "ping", "-c", "1", "-W", "1", netlab.LANHostIP)
		st, err := d.laptop(ctx, "status")
		if err != nil {
			return err
		}
		status = st
		if path = routeVia(st); !strings.HasPrefix(path, "direct ") {
			return fmt.Errorf("the route is via %q, not a direct path", path)
		}
		return nil
	})
	return path, status, err
}

// routeVia returns the path in the "via office (PATH)" of the site LAN's
// route in `warren status` output ("relay", "direct ADDR:PORT"), or ""
// when there is none.
func routeVia(status string) string {
	const via = "via office ("
	_, rest, ok := strings.Cut(status, via)
	if !ok {
		return ""
	}
	path, _, ok := strings.Cut(rest, ")")
	if !ok {
		return ""
	}
	return strings.TrimSpace(path)
}

// logLine is one warning or error a Warren process logged.
type logLine struct {
	Process string `json:"process"`
	Line    string `json:"line"`
}

// logTails returns the last n bytes each Warren process printed.
func (d *warrenDeployment) logTails(n int) map[string]string {
	m := map[string]string{}
	for name, p := range map[string]*proc{"coordinator": d.coord, "connector": d.conn, "daemon": d.daemon} {
		if p != nil {
			m[name] = tail(p.out.String(), n)
		}
	}
	return m
}

// logProblems returns up to max warning and error lines per process, and
// how many there were in all.
func (d *warrenDeployment) logProblems(max int) ([]logLine, int) {
	var lines []logLine
	total := 0
	for _, p := range []struct {
		name string
		p    *proc
	}{{"coordinator", d.coord}, {"connector", d.conn}, {"daemon", d.daemon}} {
		if p.p == nil {
			continue
		}
		n := 0
		for _, l := range strings.Split(p.p.out.String(), "\n") {
			ll := strings.ToLower(l)
			if !strings.Contains(ll, "level=warn") && !strings.Contains(ll, "level=error") &&
				!strings.Contains(ll, `"level":"warn`) && !strings.Contains(ll, `"level":"error`) && !strings.Contains(ll, "panic") {
				continue
			}
			total++
			if n < max {
				lines = append(lines, logLine{p.name, strings.TrimSpace(l)})
				n++
			}
		}
	}
	return lines, total
}
