package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/warrennet/warren/test/netlab"
)

// coordName is the coordinator's DNS name in the tests that give it one.
const coordName = "coord.warren.test"

// TestCoordinatorByName runs the README's quickstart as written: the
// coordinator's --public-url names a host, which a name server on the
// internet answers, so every token, the admin CLI, the connector and the
// laptop reach it (and its relay) by name. A route then covers the
// coordinator's address; the laptop keeps the coordinator out of the
// tunnel, also after its resolver stops answering and a netmap arrives.
func TestCoordinatorByName(t *testing.T) {
	lab := needLab(t)
	lan := startLANServices(t, lab)
	d := deployWith(t, lab, netlab.Options{CoordName: coordName, RelayOnly: true})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	tok, err := d.admin(ctx, "token", "create", "--role", "client", "--name", "laptop")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := d.Up(ctx, tok); err != nil || !strings.Contains(out, "enrolling with the coordinator at https://"+coordName+":8443") {
		t.Fatalf("warren up: %v\n%s", err, out)
	}
	if host, err := lan.ssh(ctx, lab, netlab.Laptop, "hostname"); err != nil || strings.TrimSpace(host) == "" {
		t.Fatalf("ssh through a coordinator known by name: %q, %v", host, err)
	}
	if want := "coordinator=https://" + coordName + ":8443"; !strings.Contains(d.Conn.Output(), want) {
		t.Errorf("the connector's log has no %q: its token should carry the name", want)
	}
	status, err := d.laptop(ctx, "status")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"coordinator https://" + coordName + ":8443: connected", "relay " + netlab.CoordIP + ":8443: registered"} {
		if !strings.Contains(status, want) {
			t.Errorf("warren status has no %q:\n%s", want, status)
		}
	}

	// A route over the whole "internet", coordinator included: the rest
	// of it enters the tunnel, the coordinator's address does not.
	if _, err := d.admin(ctx, "routes", "add", "198.51.100.0/24", "--connector", "office"); err != nil {
		t.Fatal(err)
	}
	guarded := func(when string) {
		t.Helper()
		eventually(t, 10*time.Second, when+": 198.51.100.99 tunnelled", func() error {
			if dev, err := routeDev(ctx, lab, "198.51.100.99"); err != nil || dev != "warren0" {
				return fmt.Errorf("routed via %q, %v", dev, err)
			}
			return nil
		})
		if dev, err := routeDev(ctx, lab, netlab.CoordIP); err != nil || dev != "eth0" {
			t.Errorf("%s: the coordinator %s is routed via %q (%v), want eth0, outside the tunnel", when, netlab.CoordIP, dev, err)
		}
	}
	guarded("name resolving")

	// The laptop loses its resolver (a café's DNS down: every query is
	// refused); a netmap arrives (a new route), which makes the laptop
	// look the name up again, and fail.
	if err := lab.Run(ctx, netlab.Laptop, "nft", "add table inet nodns { chain out { type filter hook output priority 0; udp dport 53 reject; tcp dport 53 reject; }; }"); err != nil {
		t.Fatal(err)
	}
	if out, err := lab.Output(ctx, netlab.Laptop, "dig", "+short", "+time=1", "+tries=1", coordName); err == nil {
		t.Fatalf("the laptop still resolves %s: %q", coordName, out)
	}
	if _, err := d.admin(ctx, "routes", "add", "192.168.1.0/24", "--connector", "office"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the netmap with 192.168.1.0/24 applied while the name does not resolve", func() error {
		st, err := d.laptop(ctx, "status")
		if err != nil || !strings.Contains(st, "192.168.1.0/24") {
			return fmt.Errorf("%v\n%s", err, st)
		}
		return nil
	})
	guarded("resolver down")
	status, err = d.laptop(ctx, "status")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"coordinator https://" + coordName + ":8443: connected",
		"warning: looking up the coordinator's host " + coordName + " failed",
		"its last known addresses [" + netlab.CoordIP + "]",
	} {
		if !strings.Contains(status, want) {
			t.Errorf("warren status with the resolver down has no %q:\n%s", want, status)
		}
	}
	why, err := d.laptop(ctx, "why", netlab.CoordIP)
	if want := netlab.CoordIP + " is not tunnelled: "; err != nil || !strings.Contains(why, want) || !strings.Contains(why, "is never tunnelled") {
		t.Errorf("warren why %s with the resolver down: %v\n%s\nwant %q… is never tunnelled", netlab.CoordIP, err, why, want)
	}
	if err := lab.Run(ctx, netlab.Laptop, "curl", "-sf", "--max-time", "5", "http://"+netlab.LANHostIP+":"+httpPort+"/"); err != nil {
		t.Errorf("curl through the tunnel with the resolver down: %v", err)
	}
	if host, err := lan.ssh(ctx, lab, netlab.Laptop, "hostname"); err != nil || strings.TrimSpace(host) == "" {
		t.Errorf("ssh with the resolver down: %q, %v", host, err)
	}
}
