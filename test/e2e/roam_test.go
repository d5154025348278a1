package e2e

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warrennet/warren/test/netlab"
)

// Roaming bounds (issue 18): traffic through the tunnel resumes this soon
// after the laptop's network changes, and after the daemon thaws.
const (
	roamBound = time.Second
	thawBound = 2 * time.Second
	// roamPatience is how long resumed waits at most: well past the
	// bounds, so that a failure says how long traffic really took.
	roamPatience = 12 * time.Second
)

// resumed pings lanhost through the tunnel from the laptop until a reply
// comes, each attempt waiting 200 ms for its reply, and returns how long
// after since the first reply came; it fails the test if none comes
// within roamPatience.
func resumed(ctx context.Context, t *testing.T, lab *netlab.Lab, since time.Time) time.Duration {
	t.Helper()
	deadline := since.Add(roamPatience)
	for time.Now().Before(deadline) {
		if err := lab.Run(ctx, netlab.Laptop, "ping", "-n", "-c", "1", "-W", "0.2", netlab.LANHostIP); err == nil {
			return time.Since(since)
		}
	}
	t.Fatalf("no ping through the tunnel within %v", roamPatience)
	return 0
}

// roamDeploy deploys Warren with direct paths, brings the laptop up and
// waits for its direct path to the connector: the case where a network
// change hurts most, as the old path then dies silently.
func roamDeploy(ctx context.Context, t *testing.T, lab *netlab.Lab) *deployment {
	t.Helper()
	d := deploy(t, lab)
	tok, err := d.admin(ctx, "token", "create", "--role", "client", "--name", "laptop")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := d.Up(ctx, tok); err != nil {
		t.Fatalf("warren up: %v\n%s", err, out)
	}
	waitDirect(ctx, t, d)
	return d
}

// waitDirect waits, with traffic flowing, for the laptop's direct path to
// the connector's NAT.
func waitDirect(ctx context.Context, t *testing.T, d *deployment) {
	t.Helper()
	want := "via office (direct " + netlab.SiteWAN + ":"
	eventually(t, 20*time.Second, "a direct path to the connector's NAT", func() error {
		d.lab.Run(ctx, netlab.Laptop, "ping", "-n", "-c", "1", "-W", "1", netlab.LANHostIP)
		status, err := d.laptop(ctx, "status")
		if err != nil || !strings.Contains(status, want) {
			return fmt.Errorf("want %q in warren status:\n%s\n%v", want, status, err)
		}
		return nil
	})
}

// TestRoaming moves the laptop while it talks to lanhost over a direct
// path: first its home NAT gets a new public address (nothing changes on
// the laptop, which must notice by itself), then the laptop gets a new
// address on its LAN (its network watcher sees it). Each time traffic
// through the tunnel must resume within a second.
func TestRoaming(t *testing.T) {
	lab := needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	d := roamDeploy(ctx, t, lab)

	const newWAN = "198.51.100.31"
	move := func(what string, cmds [][]string) {
		t.Helper()
		// Traffic flows up to the change, as it does on a laptop in use.
		if err := lab.Run(ctx, netlab.Laptop, "ping", "-n", "-c", "3", "-i", "0.1", "-W", "1", netlab.LANHostIP); err != nil {
			t.Fatalf("before %s: ping through the tunnel: %v", what, err)
		}
		for _, c := range cmds {
			if err := lab.Run(ctx, c[0], "ip", c[1:]...); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
		took := resumed(ctx, t, lab, time.Now())
		t.Logf("%s: traffic resumed after %v", what, took.Round(time.Millisecond))
		if took > roamBound {
			t.Errorf("%s: traffic resumed after %v, want at most %v", what, took.Round(time.Millisecond), roamBound)
		}
	}

	// The ISP gives the home router a new address: its masquerade
	// forgets the old mappings, and the relay and the connector see the
	// laptop somewhere new.
	move("the NAT's public address changed", [][]string{
		{netlab.HomeGW, "addr", "del", netlab.HomeWAN + "/24", "dev", "wan0"},
		{netlab.HomeGW, "addr", "add", newWAN + "/24", "dev", "wan0"},
	})
	waitDirect(ctx, t, d)

	// The laptop gets a new address on its LAN (another DHCP lease).
	move("the laptop's address changed", [][]string{
		{netlab.Laptop, "addr", "del", netlab.LaptopIP + "/24", "dev", "eth0"},
		{netlab.Laptop, "addr", "add", "10.1.0.3/24", "dev", "eth0"},
		{netlab.Laptop, "route", "replace", "default", "via", netlab.HomeLANGW},
	})
	// That one the daemon saw happen (its network watcher), rather than
	// noticing its direct path fall silent.
	if out := d.Daemon.Output(); !strings.Contains(out, `msg="the network changed; registering again"`) || !strings.Contains(out, "on eth0") {
		t.Errorf("the daemon did not react to its own address changing:\n%s", out)
	}
	waitDirect(ctx, t, d)
}

// TestRoamingFreeze freezes the laptop daemon with SIGSTOP for two
// minutes, as a suspend does: longer than the relay keeps a registration
// and than the connector keeps a direct path, past WireGuard's rekey
// time. Traffic must resume within 2 s of the thaw.
func TestRoamingFreeze(t *testing.T) {
	lab := needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	d := roamDeploy(ctx, t, lab)

	if err := d.Daemon.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	select {
	case <-time.After(2 * time.Minute):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	if err := d.Daemon.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	took := resumed(ctx, t, lab, time.Now())
	t.Logf("traffic resumed %v after the thaw", took.Round(time.Millisecond))
	if took > thawBound {
		t.Errorf("traffic resumed %v after the thaw, want at most %v", took.Round(time.Millisecond), thawBound)
	}
	// The daemon knew it had been frozen (a suspend stops the clock its
	// timers run on, so it cannot count on them firing late as they do
	// after SIGSTOP).
	eventually(t, 5*time.Second, "the daemon noticing its freeze", func() error {
		if out := d.Daemon.Output(); !strings.Contains(out, "the daemon did not run for 2m") {
			return fmt.Errorf("no freeze in its log")
		}
		return nil
	})
	// The control stream comes back too.
	eventually(t, 10*time.Second, "the control stream after the thaw", func() error {
		status, err := d.laptop(ctx, "status")
		if err != nil || !strings.Contains(status, ": connected\n") {
			return fmt.Errorf("warren status:\n%s\n%v", status, err)
		}
		return nil
	})
}
