package e2e

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrennet/warren/test/netlab"
)

// deployment is Warren running in the lab (netlab.DeployWarren), with
// the names the tests use.
type deployment struct {
	*netlab.Warren
	lab *netlab.Lab
	lan *lanServices // set by tests that need lanSSH
}

func (d *deployment) admin(ctx context.Context, args ...string) (string, error) {
	return d.Admin(ctx, args...)
}

func (d *deployment) laptop(ctx context.Context, args ...string) (string, error) {
	return d.Laptop(ctx, args...)
}

// lanSSH runs hostname on lanhost over plain ssh from the laptop.
func (d *deployment) lanSSH(ctx context.Context, lab *netlab.Lab) (string, error) {
	out, err := d.lan.ssh(ctx, lab, netlab.Laptop, "hostname")
	if err == nil && strings.TrimSpace(out) == "" {
		err = fmt.Errorf("empty hostname")
	}
	return out, err
}

func deploy(t *testing.T, lab *netlab.Lab) *deployment {
	t.Helper()
	return deployWith(t, lab, netlab.Options{})
}

func deployWith(t *testing.T, lab *netlab.Lab, opts netlab.Options) *deployment {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	w, err := lab.DeployWarrenWith(ctx, warrenBin, t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return &deployment{Warren: w, lab: lab}
}

// TestSSHThroughConnector is the key test: from the laptop, plain OpenSSH
// reaches the real sshd on the site LAN through coordinator, relay and
// connector, while the site's NAT drops every inbound connection. The
// nodes run --relay-only, so everything crosses the relay
// (TestDirectPath covers the direct path).
// resettingServer, run by python3 in lanhost with a port, answers one HTTP
// request with a response that ends when the connection does (no
// length), and then resets the connection instead of closing it.
const resettingServer = `
import socket, struct, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(1)
print("listening", flush=True)
c, _ = s.accept()
c.recv(65536)
c.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"x" * 100000)
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
c.close()
`

const resetPort = "8081"

func TestSSHThroughConnector(t *testing.T) {
	lab := needLab(t)
	lan := startLANServices(t, lab)
	lan.unreachable(t, lab, "before warren up")
	d := deployWith(t, lab, netlab.Options{RelayOnly: true})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	clientTok, err := d.admin(ctx, "token", "create", "--role", "client", "--name", "laptop")
	if err != nil {
		t.Fatal(err)
	}
	out, err := d.Up(ctx, clientTok)
	if err != nil {
		t.Fatalf("warren up: %v\n%s", err, out)
	}
	for _, step := range []string{"enrolling", "connector office: handshake complete"} {
		if !strings.Contains(out, step) {
			t.Errorf("warren up printed no %q step:\n%s", step, out)
		}
	}

	// ssh: plain address, no ProxyCommand, no config.
	host, err := lan.ssh(ctx, lab, netlab.Laptop, "hostname")
	if err != nil || strings.TrimSpace(host) == "" {
		t.Fatalf("ssh hostname: %q, %v", host, err)
	}
	addrs, err := lan.ssh(ctx, lab, netlab.Laptop, "ip", "-o", "-4", "addr", "show", "eth0")
	if err != nil || !strings.Contains(addrs, netlab.LANHostIP+"/24") {
		t.Errorf("ssh ran somewhere other than lanhost: %q, %v", addrs, err)
	}
	// HTTP with curl.
	body, err := lab.Output(ctx, netlab.Laptop, "curl", "-sf", "--max-time", "10", "http://"+netlab.LANHostIP+":"+httpPort+"/")
	if err != nil || body != "hello from lanhost\n" {
		t.Errorf("curl: %q, %v", body, err)
	}
	// DNS over UDP with dig.
	ans, err := lab.Output(ctx, netlab.Laptop, "dig", "+short", "+time=2", "+tries=2", "@"+netlab.LANHostIP, lanName)
	if err != nil || strings.TrimSpace(ans) != netlab.LANHostIP {
		t.Errorf("dig %s: %q, %v", lanName, ans, err)
	}
	// ICMP echo.
	if err := lab.Run(ctx, netlab.Laptop, "ping", "-c", "3", "-W", "2", netlab.LANHostIP); err != nil {
		t.Errorf("ping: %v", err)
	}
	// 64 MiB arrive intact.
	dst := filepath.Join(t.TempDir(), "big.bin")
	if err := lab.Run(ctx, netlab.Laptop, "curl", "-sf", "--max-time", "120", "-o", dst, "http://"+netlab.LANHostIP+":"+httpPort+"/big.bin"); err != nil {
		t.Errorf("64 MiB download: %v", err)
	} else if got := fileSum(t, dst); got != lan.bigSum {
		t.Errorf("64 MiB download checksum %s, want %s", got, lan.bigSum)
	}

	// A LAN host that resets a response midway: curl sees the reset (exit
	// 56), rather than an end of stream that makes the cut response, which
	// has no length, look whole.
	srv, err := lab.Start(netlab.LANHost, "python3", "-c", resettingServer, resetPort)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	eventually(t, 5*time.Second, "the resetting server listening", func() error {
		if !strings.Contains(srv.Output(), "listening") {
			return fmt.Errorf("output so far: %q", srv.Output())
		}
		return nil
	})
	err = lab.Run(ctx, netlab.Laptop, "curl", "-s", "-o", "/dev/null", "--max-time", "10", "http://"+netlab.LANHostIP+":"+resetPort+"/")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 56 {
		t.Errorf("curl from a server that resets: %v, want exit status 56 (a reset while receiving)", err)
	}

	status, err := d.laptop(ctx, "status")
	// The relay sees the laptop as its home NAT's public address.
	if err != nil || !strings.Contains(status, "192.168.0.0/24") || !strings.Contains(status, "via office (relay)") ||
		!strings.Contains(status, "sees this node as "+netlab.HomeWAN+":") {
		t.Errorf("warren status:\n%s\n%v", status, err)
	}

	// routes rm cuts it within 2 s; routes add restores it, no restart.
	if _, err := d.admin(ctx, "routes", "rm", "192.168.0.0/24"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	eventually(t, 2*time.Second, "route removed from the laptop", func() error {
		out, err := lab.Output(ctx, netlab.Laptop, "ip", "route", "show", "192.168.0.0/24")
		if err != nil || strings.TrimSpace(out) != "" {
			return fmt.Errorf("route still installed: %q %v", out, err)
		}
		return nil
	})
	t.Logf("routes rm took effect on the laptop after %v", time.Since(start))
	lan.unreachable(t, lab, "after routes rm")
	if _, err := d.admin(ctx, "routes", "add", "192.168.0.0/24", "--connector", "office"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "reachable again after routes add", func() error {
		_, err := lab.Output(ctx, netlab.Laptop, "curl", "-sf", "--max-time", "2", "http://"+netlab.LANHostIP+":"+httpPort+"/")
		return err
	})

	// A daemon killed with SIGKILL is brought back: the next start removes
	// any leftovers and, since the tunnel was up, brings it up again.
	// (The kernel removes a TUN, and its routes, when its last fd
	// closes; the restart's cleanup covers whatever would remain.)
	d.Daemon.Kill()
	eventually(t, 5*time.Second, "nothing left routed after the crash", func() error {
		out, err := lab.Output(ctx, netlab.Laptop, "ip", "route", "show", "192.168.0.0/24")
		if err != nil || strings.TrimSpace(out) != "" {
			return fmt.Errorf("route left: %q %v", out, err)
		}
		return nil
	})
	if err := d.StartDaemon(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "tunnel back after a daemon crash", func() error {
		_, err := lab.Output(ctx, netlab.Laptop, "curl", "-sf", "--max-time", "2", "http://"+netlab.LANHostIP+":"+httpPort+"/")
		return err
	})

	// warren down removes everything it installed.
	if out, err := d.laptop(ctx, "down"); err != nil {
		t.Fatalf("warren down: %v %s", err, out)
	}
	lan.unreachable(t, lab, "after warren down")
	if out, _ := lab.Output(ctx, netlab.Laptop, "ip", "link", "show", "warren0"); strings.Contains(out, "warren0") {
		t.Errorf("warren0 still exists after down:\n%s", out)
	}

	// And up again: a new socket and WireGuard session, whose handshake
	// `warren up` waits for, so ssh works at the first try.
	if out, err := d.laptop(ctx, "up"); err != nil {
		t.Fatalf("warren up after down: %v %s", err, out)
	}
	if host, err := lan.ssh(ctx, lab, netlab.Laptop, "hostname"); err != nil || strings.TrimSpace(host) == "" {
		t.Errorf("ssh right after warren up: %q %v", host, err)
	}
}
