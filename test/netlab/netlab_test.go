package netlab

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestTopology checks the lab itself: the connector and the laptop reach
// the coordinator out through their NATs, but nothing from the internet
// reaches into the site or the home network, nor either gateway, and the
// laptop cannot reach the site LAN.
func TestTopology(t *testing.T) {
	if err := Available(); err != nil {
		t.Skipf("skipping the netns topology test: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l, err := New(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	ping := func(from, to string) error {
		return l.Run(ctx, from, "ping", "-c", "1", "-W", "1", to)
	}
	for _, ok := range []struct{ from, to string }{
		{Conn, CoordIP}, {Laptop, CoordIP}, {LANHost, ConnIP},
	} {
		if err := ping(ok.from, ok.to); err != nil {
			t.Errorf("%s → %s should work: %v", ok.from, ok.to, err)
		}
	}
	for _, blocked := range []struct{ from, to string }{
		{Laptop, LANHostIP}, {Coord, ConnIP}, {Coord, LANHostIP}, {Coord, SiteWAN}, {Coord, HomeWAN}, {Coord, LaptopIP},
	} {
		if err := ping(blocked.from, blocked.to); err == nil {
			t.Errorf("%s → %s should fail", blocked.from, blocked.to)
		}
	}
	// The coordinator sees the connector as the site's public address.
	out, err := l.Output(ctx, Coord, "ip", "-o", "addr", "show", "wan0")
	if err != nil || !strings.Contains(out, CoordIP) {
		t.Errorf("coord wan0: %q, %v", out, err)
	}
	// No namespace routes out of the machine: no default route in the
	// edge namespaces.
	for _, r := range []string{Coord, SiteGW, HomeGW, Inet} {
		out, err := l.Output(ctx, r, "ip", "route", "show", "default")
		if err != nil || strings.TrimSpace(out) != "" {
			t.Errorf("%s has a default route %q (%v)", r, out, err)
		}
	}
}
