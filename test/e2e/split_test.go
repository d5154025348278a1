package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/warrennet/warren/test/netlab"
)

// routeDev is the device the laptop's kernel picks for ip.
func routeDev(ctx context.Context, lab *netlab.Lab, ip string) (string, error) {
	out, err := lab.Output(ctx, netlab.Laptop, "ip", "-o", "route", "get", ip)
	if err != nil {
		return "", err
	}
	f := strings.Fields(out)
	for i := range f[:len(f)-1] {
		if f[i] == "dev" {
			return f[i+1], nil
		}
	}
	return "", fmt.Errorf("no dev in %q", out)
}

// TestSplitTunnel drives the split policy from the admin CLI and watches
// the laptop follow within seconds, with an ssh session to the second LAN
// alive across every edit.
func TestSplitTunnel(t *testing.T) {
	lab := needLab(t)
	lan := startLANServices(t, lab)
	d := deploy(t, lab)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := d.admin(ctx, "routes", "add", "192.168.1.0/24", "--connector", "office"); err != nil {
		t.Fatal(err)
	}
	tok, err := d.admin(ctx, "token", "create", "--role", "client", "--name", "laptop")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := d.Up(ctx, tok); err != nil {
		t.Fatalf("warren up: %v\n%s", err, out)
	}
	curl := func(ip string) error {
		return lab.Run(ctx, netlab.Laptop, "curl", "-sf", "--max-time", "3", "http://"+ip+":"+httpPort+"/")
	}
	dev := func(ip, want string) func() error {
		return func() error {
			got, err := routeDev(ctx, lab, ip)
			if err != nil {
				return err
			}
			if got != want {
				return fmt.Errorf("%s goes to %s, want %s", ip, got, want)
			}
			return nil
		}
	}

	// The default policy reaches both LANs with no split edits, though its
	// exclude list holds 192.168.0.0/16.
	for _, ip := range []string{netlab.LANHostIP, netlab.LAN2HostIP} {
		if err := curl(ip); err != nil {
			t.Errorf("default policy: %s unreachable: %v", ip, err)
		}
	}

	// An ssh session to the second LAN, alive across all the edits below.
	session, err := lab.Start(netlab.Laptop, "ssh", lan.SSHArgsTo(netlab.LAN2HostIP, "for i in $(seq 1 60); do echo tick $i; sleep 0.5; done")...)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "ssh session ticking", func() error {
		if !strings.Contains(session.Output(), "tick 2") {
			return fmt.Errorf("output %q", session.Output())
		}
		return nil
	})

	// An admin exclude keeps .10 tunnelled and sends .200 to the local network.
	out, err := d.admin(ctx, "split", "add", "192.168.0.128/25", "--comment", "printers")
	if err != nil {
		t.Fatalf("split add: %v %s", err, out)
	}
	eventually(t, 3*time.Second, ".200 bypassed", dev("192.168.0.200", "eth0"))
	if err := dev(netlab.LANHostIP, "warren0")(); err != nil {
		t.Error(err)
	}
	if err := curl(netlab.LANHostIP); err != nil {
		t.Errorf("after the exclude, .10 unreachable: %v", err)
	}
	why, err := d.laptop(ctx, "why", "192.168.0.200")
	if err != nil || !strings.Contains(why, "bypassed") || !strings.Contains(why, "192.168.0.128/25") {
		t.Errorf("warren why 192.168.0.200: %q %v", why, err)
	}

	// Include mode listing only 192.168.1.0/24 stops .10 from being tunnelled.
	for _, args := range [][]string{{"split", "mode", "include"}, {"split", "add", "192.168.1.0/24"}} {
		if out, err := d.admin(ctx, args...); err != nil {
			t.Fatalf("%v: %v %s", args, err, out)
		}
	}
	eventually(t, 3*time.Second, ".10 no longer tunnelled", dev(netlab.LANHostIP, "eth0"))
	if err := curl(netlab.LAN2HostIP); err != nil {
		t.Errorf("include mode: %s unreachable: %v", netlab.LAN2HostIP, err)
	}
	why, err = d.laptop(ctx, "why", netlab.LANHostIP)
	if err != nil || !strings.Contains(why, "not in include list") {
		t.Errorf("warren why %s: %q %v", netlab.LANHostIP, why, err)
	}

	// The ssh session survived every edit.
	eventually(t, 45*time.Second, "ssh session finished", func() error {
		if exited, _ := session.Exited(); !exited {
			return fmt.Errorf("still running")
		}
		return nil
	})
	if _, err := session.Exited(); err != nil || !strings.Contains(session.Output(), "tick 60") {
		t.Errorf("ssh session across the edits: %v\n%s", err, session.Output())
	}

	// A tunnelled prefix overlapping the laptop's own LAN: the tunnel wins,
	// the default gateway stays local, and status warns; --lan-wins flips it.
	if out, err := d.admin(ctx, "split", "reset"); err != nil {
		t.Fatalf("split reset: %v %s", err, out)
	}
	if out, err := d.admin(ctx, "routes", "add", "10.1.0.0/24", "--connector", "office"); err != nil {
		t.Fatalf("routes add 10.1.0.0/24: %v %s", err, out)
	}
	eventually(t, 3*time.Second, "laptop LAN tunnelled", dev("10.1.0.50", "warren0"))
	if err := dev(netlab.HomeLANGW, "eth0")(); err != nil {
		t.Errorf("default gateway: %v", err)
	}
	status, err := d.laptop(ctx, "status")
	if err != nil || !strings.Contains(status, "overlaps this machine's LAN 10.1.0.0/24: the tunnel wins") {
		t.Errorf("status lacks the LAN-overlap warning:\n%s\n%v", status, err)
	}
	if err := curl(netlab.LANHostIP); err != nil {
		t.Errorf("with the laptop LAN tunnelled, the tunnel itself broke: %v", err)
	}
	if out, err := d.laptop(ctx, "set", "--lan-wins"); err != nil {
		t.Fatalf("warren set --lan-wins: %v %s", err, out)
	}
	eventually(t, 3*time.Second, "laptop LAN local again", dev("10.1.0.50", "eth0"))
	if err := curl(netlab.LANHostIP); err != nil {
		t.Errorf("after set --lan-wins, %s unreachable: %v", netlab.LANHostIP, err)
	}
}
