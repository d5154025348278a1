package dataplane

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/warrennet/warren/test/netlab"
)

// warrenDeployment is Warren as netlab.DeployWarrenWith deploys it for
// the e2e tests (the coordinator with its relay in coord, the connector
// as user nobody in conn behind the site NAT, the laptop daemon), brought
// up with `warren up`, routing 192.168.0.0/24. The lab stops its
// processes (SIGTERM first) when it closes.
type warrenDeployment struct {
	*netlab.Warren
	lab *netlab.Lab
	// UpOutput and Status are what `warren up` and `warren status` printed.
	UpOutput, Status string
}

// benchUser is the user the laptop's token enrolls it for: the access
// policy the bench loads (policy_test.go) names it.
const benchUser = "laptop-owner@bench.example"

// deployWarren deploys Warren in lab, with its state under dir, and brings
// the tunnel up. With relayOnly the connector and the daemon run with
// --relay-only, so every datagram goes through the relay; without it they
// look for a direct path once traffic flows (see waitDirect).
func deployWarren(ctx context.Context, lab *netlab.Lab, bin, dir string, relayOnly bool) (*warrenDeployment, error) {
	w, err := lab.DeployWarrenWith(ctx, bin, dir, netlab.Options{RelayOnly: relayOnly})
	if err != nil {
		return nil, err
	}
	d := &warrenDeployment{Warren: w, lab: lab}
	clientTok, err := d.admin(ctx, "token", "create", "--role", "client", "--name", "laptop", "--user", benchUser)
	if err != nil {
		return nil, err
	}
	if d.UpOutput, err = d.Up(ctx, clientTok); err != nil {
		return nil, fmt.Errorf("warren up: %w\n%s\n%s", err, tail(d.Daemon.Output(), 2000), tail(d.Conn.Output(), 2000))
	}
	if d.Status, err = d.laptop(ctx, "status"); err != nil {
		return nil, err
	}
	return d, nil
}

// admin runs an admin command on the coordinator host.
func (d *warrenDeployment) admin(ctx context.Context, args ...string) (string, error) {
	return d.Admin(ctx, args...)
}

// laptop runs a user command against the laptop's daemon.
func (d *warrenDeployment) laptop(ctx context.Context, args ...string) (string, error) {
	return d.Laptop(ctx, args...)
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

// idleRoutes is how many routes each laptop has for the idle memory
// readings (perf-anchors M1): the site LAN and idleRoutes-1 prefixes of
// 172.16.0.0/16, no host behind them, all through the connector. They
// are every other /24 (172.16.1.0, 172.16.3.0, …): the daemon merges
// adjacent prefixes into one route, and these must stay ten.
const idleRoutes = 10

// idlePrefixes are the idleRoutes-1 prefixes addIdleRoutes routes
// besides the site LAN.
func idlePrefixes() []netip.Prefix {
	var ps []netip.Prefix
	for i := 1; i < idleRoutes; i++ {
		ps = append(ps, netip.PrefixFrom(netip.AddrFrom4([4]byte{172, 16, byte(2*i - 1), 0}), 24))
	}
	return ps
}

// addIdleRoutes routes idleRoutes-1 more prefixes to the connector and
// waits until the laptop's kernel routes all idleRoutes into warren0.
func (d *warrenDeployment) addIdleRoutes(ctx context.Context) error {
	for _, p := range idlePrefixes() {
		if _, err := d.admin(ctx, "routes", "add", p.String(), "--connector", "office", "--comment", "bench: idle memory"); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := d.lab.Output(ctx, netlab.Laptop, "ip", "route", "show", "dev", "warren0")
		if err != nil {
			return err
		}
		n := strings.Count(out, "\n")
		if n >= idleRoutes {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the laptop routes %d prefixes into warren0 after 10 s, want %d:\n%s", n, idleRoutes, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
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
	for name, p := range map[string]*netlab.Proc{"coordinator": d.Coord, "connector": d.Conn, "daemon": d.Daemon} {
		if p != nil {
			m[name] = tail(p.Output(), n)
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
		p    *netlab.Proc
	}{{"coordinator", d.Coord}, {"connector", d.Conn}, {"daemon", d.Daemon}} {
		if p.p == nil {
			continue
		}
		n := 0
		for _, l := range strings.Split(p.p.Output(), "\n") {
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
