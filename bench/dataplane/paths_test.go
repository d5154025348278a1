package dataplane

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/warrennet/warren/test/netlab"
)

// echoPort is the echo server's port on the server side of each path.
const echoPort = "7007"

// warrenTUN is the laptop daemon's TUN (its --interface default).
const warrenTUN = "warren0"

// path is one way from an iperf3 client to its server.
type path struct {
	name     string // veth, wggo, warren (the relay path), direct
	clientNS string
	serverNS string
	target   string // the server's address as the client dials it
	// legs are the namespaces whose kernel counters are read, by role;
	// the sender and receiver of each direction are the client and
	// server legs.
	legs map[string]leg
	// pids are the tunnel's processes by role (client, server, relay).
	pids map[string]int
}

// Roles of a path's processes and namespaces.
const (
	roleClient = "client"
	roleServer = "server"
	roleRelay  = "relay"
	roleLAN    = "lan" // Warren's connector namespace: the connector's LAN sockets
)

// warrenPath is the path through deployment d, named name: iperf3 from
// the laptop to lanhost, with the counters of laptop (and its TUN), coord,
// conn and lanhost, and the daemon, connector and coordinator as the
// client, server and relay processes.
func (h *harness) warrenPath(ctx context.Context, name string, d *warrenDeployment, bin string) (*path, error) {
	pids := map[string]int{}
	for role, r := range map[string]struct{ ns, cmd string }{
		roleClient: {d.lab.NS(netlab.Laptop), "daemon"},
		roleServer: {d.lab.NS(netlab.Conn), "connector"},
		roleRelay:  {d.lab.NS(netlab.Coord), "coordinator"},
	} {
		pid, err := findPID(ctx, r.ns, func(argv []string) bool {
			return len(argv) > 1 && argv[0] == bin && argv[1] == r.cmd
		})
		if err != nil {
			return nil, fmt.Errorf("finding warren %s (%s path): %w", r.cmd, name, err)
		}
		pids[role] = pid
	}
	return &path{name: name, clientNS: d.lab.NS(netlab.Laptop), serverNS: d.lab.NS(netlab.LANHost), target: netlab.LANHostIP,
		legs: map[string]leg{roleClient: {d.lab.NS(netlab.Laptop), warrenTUN}, roleRelay: {ns: d.lab.NS(netlab.Coord)},
			roleLAN: {ns: d.lab.NS(netlab.Conn)}, roleServer: {ns: d.lab.NS(netlab.LANHost)}},
		pids: pids}, nil
}

// setupNaive starts the naive connector (see naive_test.go) and returns
// its path: iperf3 from a through a's stock wireguard-go (clientPID) to
// the naive connector in b, which connects to c. When it cannot, it
// returns no path and why: the other paths are still measured.
func (h *harness) setupNaive(ctx context.Context, clientPID int) (*path, string) {
	pid, err := h.pair.startNaive(ctx, h.exe)
	if err != nil {
		return nil, err.Error()
	}
	if err := h.startEcho(ctx, h.pair.ns(pairC), echoPort); err != nil {
		return nil, fmt.Sprintf("echo server: %v", err)
	}
	return &path{name: "naive", clientNS: h.pair.ns(pairA), serverNS: h.pair.ns(pairC), target: naiveTun,
		pids: map[string]int{roleClient: clientPID, roleServer: pid},
		legs: map[string]leg{roleClient: {h.pair.ns(pairA), h.pair.ifname(pairA)}, roleLAN: {ns: h.pair.ns(pairB)},
			roleServer: {ns: h.pair.ns(pairC)}}}, ""
}

// setupDirect builds the second lab, deploys Warren there without
// --relay-only and waits up to directWait for a direct path. When there
// is none, it returns no path and why, not an error: the other paths are
// still measured. It returns an error only when ctx ends.
func (h *harness) setupDirect(ctx context.Context, bin string) (p *path, missing string, err error) {
	defer func() {
		if err == nil && missing != "" && ctx.Err() != nil {
			p, missing, err = nil, "", ctx.Err()
		}
	}()
	if h.directLab, err = netlab.New(ctx); err != nil {
		return nil, fmt.Sprintf("building the second lab: %v", err), nil
	}
	if err := h.startEcho(ctx, h.directLab.NS(netlab.LANHost), echoPort); err != nil {
		return nil, fmt.Sprintf("echo server: %v", err), nil
	}
	d, err := deployWarren(ctx, h.directLab, bin, filepath.Join(h.dir, "direct"), false)
	if err != nil {
		return nil, fmt.Sprintf("deploying Warren: %v", err), nil
	}
	h.direct = d
	h.progress("warren up (direct lab): %s", strings.ReplaceAll(strings.TrimSpace(d.UpOutput), "\n", " | "))
	start := time.Now()
	via, status, err := d.waitDirect(ctx, directWait)
	if status != "" {
		d.Status = status
	}
	if err != nil {
		return nil, fmt.Sprintf("warren status never showed \"via office (direct …)\" (ping to %s meanwhile): %v", netlab.LANHostIP, err), nil
	}
	h.progress("direct path up after %v: %s", time.Since(start).Round(100*time.Millisecond), via)
	if p, err = h.warrenPath(ctx, "direct", d, bin); err != nil {
		return nil, err.Error(), nil
	}
	return p, "", nil
}

// checkRoute returns the route's path in `warren status` after a Warren
// path's figures, and notes in rep when it is not the path measured: a
// direct path that fell back to the relay, or a relay-only path that
// went direct.
func (h *harness) checkRoute(ctx context.Context, run int, name string, d *warrenDeployment, rep *report) string {
	via, err := d.route(ctx)
	if err != nil {
		via = "unknown: " + err.Error()
	}
	if ok := (name == "direct") == strings.HasPrefix(via, "direct "); !ok {
		n := fmt.Sprintf("run %d %s: after its figures, warren status shows the route via %q", run, name, via)
		rep.Notes = append(rep.Notes, n)
		h.progress("  warning: %s", n)
	}
	return via
}

// startEcho starts this binary as a TCP echo server on port in ns.
func (h *harness) startEcho(ctx context.Context, ns, port string) error {
	p, err := h.procs.start(ns, "env", modeEnv+"="+modeEcho, addrEnv+"=0.0.0.0:"+port, h.exe)
	if err != nil {
		return err
	}
	return p.waitOutput(ctx, "listening", 10*time.Second)
}
