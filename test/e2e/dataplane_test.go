package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrennet/warren/test/netlab"
)

// deployment is Warren running in the lab: a coordinator in coord, a
// connector (as an unprivileged user) in conn, a daemon in laptop.
type deployment struct {
	lab     *netlab.Lab
	data    string // coordinator data dir
	socket  string
	daemon  *netlab.Proc
	conn    *netlab.Proc
	coord   *netlab.Proc
	laptopD string
}

// admin runs an admin command on the coordinator host.
func (d *deployment) admin(ctx context.Context, args ...string) (string, error) {
	return warren(ctx, d.lab, netlab.Coord, append([]string{"--data", d.data}, args...)...)
}

// laptop runs a user command against the laptop's daemon.
func (d *deployment) laptop(ctx context.Context, args ...string) (string, error) {
	return warren(ctx, d.lab, netlab.Laptop, append([]string{"--socket", d.socket}, args...)...)
}

func deploy(t *testing.T, lab *netlab.Lab) *deployment {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	root := t.TempDir()
	// The connector runs as nobody and must reach its state directory.
	os.Chmod(filepath.Dir(root), 0o755)
	os.Chmod(root, 0o755)
	d := &deployment{lab: lab, data: filepath.Join(root, "coord"), socket: filepath.Join(root, "warren.sock"), laptopD: filepath.Join(root, "laptop")}

	var err error
	d.coord, err = lab.Start(netlab.Coord, warrenBin, "coordinator", "--listen", netlab.CoordIP+":8443", "--data", d.data)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "coordinator serving", func() error {
		_, err := d.admin(ctx, "nodes", "ls")
		return err
	})
	connTok, err := d.admin(ctx, "token", "create", "--role", "connector", "--name", "office")
	if err != nil {
		t.Fatal(err)
	}
	// The connector runs as nobody: it needs no root. Its netns lets
	// unprivileged users ping, as a site's sysctl would.
	connState := filepath.Join(root, "connector")
	if err := os.MkdirAll(connState, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(connState, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := lab.Run(ctx, netlab.Conn, "sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647"); err != nil {
		t.Fatal(err)
	}
	d.conn, err = lab.Start(netlab.Conn, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
		warrenBin, "connector", "--token", connTok, "--state", connState)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "connector online", func() error {
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
		return fmt.Errorf("connector not online yet: %s", out)
	})
	if _, err := d.admin(ctx, "routes", "add", "192.168.0.0/24", "--connector", "office", "--comment", "site LAN"); err != nil {
		t.Fatal(err)
	}
	d.daemon, err = lab.Start(netlab.Laptop, warrenBin, "daemon", "--state", d.laptopD, "--socket", d.socket)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "daemon socket", func() error {
		_, err := d.laptop(ctx, "status")
		return err
	})
	return d
}

// TestSSHThroughConnector is the key test: from the laptop, plain OpenSSH
// reaches the real sshd on the site LAN through coordinator, relay and
// connector, while the site's NAT drops every inbound connection.
func TestSSHThroughConnector(t *testing.T) {
	lab := needLab(t)
	lan := startLANServices(t, lab)
	lan.unreachable(t, lab, "before warren up")
	d := deploy(t, lab)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	clientTok, err := d.admin(ctx, "token", "create", "--role", "client", "--name", "laptop")
	if err != nil {
		t.Fatal(err)
	}
	out, err := d.laptop(ctx, "up", "--token", clientTok)
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

	// A daemon killed with SIGKILL leaves its device behind; the next start
	// removes the leftovers and, since the tunnel was up, brings it back.
	// (The kernel removes a TUN, and its routes, when its last fd
	// closes; the restart's cleanup covers whatever would remain.)
	d.daemon.Kill()
	eventually(t, 5*time.Second, "nothing left routed after the crash", func() error {
		out, err := lab.Output(ctx, netlab.Laptop, "ip", "route", "show", "192.168.0.0/24")
		if err != nil || strings.TrimSpace(out) != "" {
			return fmt.Errorf("route left: %q %v", out, err)
		}
		return nil
	})
	d.daemon, err = lab.Start(netlab.Laptop, warrenBin, "daemon", "--state", d.laptopD, "--socket", d.socket)
	if err != nil {
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
}
