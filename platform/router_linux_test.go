//go:build linux

package platform

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

// These tests change kernel state, so each runs in a network namespace of
// its own (inNetns). They skip unless run as root.

const tunName = "warren0"

// newTUN creates the test's TUN device, closed at cleanup.
func newTUN(t *testing.T, name string) (tun.Device, netlink.Link) {
	t.Helper()
	dev, err := CreateTUN(name, 1280)
	if err != nil {
		t.Fatalf("CreateTUN(%q, 1280): %v", name, err)
	}
	t.Cleanup(func() { dev.Close() })
	link, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatalf("finding %s: %v", name, err)
	}
	return dev, link
}

// newLAN creates an up veth pair, name and name+"p", and gives name the
// addresses: a stand-in for a LAN interface (this kernel may lack the dummy
// driver).
func newLAN(t *testing.T, name string, addrs ...string) netlink.Link {
	t.Helper()
	link := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "p"}
	if err := netlink.LinkAdd(link); err != nil {
		t.Fatalf("adding veth %s: %v", name, err)
	}
	for _, n := range []string{name + "p", name} {
		l, err := netlink.LinkByName(n)
		if err != nil {
			t.Fatal(err)
		}
		if err := netlink.LinkSetUp(l); err != nil {
			t.Fatalf("bringing %s up: %v", n, err)
		}
	}
	for _, a := range addrs {
		addr := &netlink.Addr{IPNet: ipNet(netip.MustParsePrefix(a))}
		if addr.IP.To4() == nil {
			addr.Flags = unix.IFA_F_NODAD
		}
		if err := netlink.AddrAdd(link, addr); err != nil {
			t.Fatalf("adding %s to %s: %v", a, name, err)
		}
	}
	return link
}

func mustSet(t *testing.T, r Router, cfg *Config) {
	t.Helper()
	if err := r.Set(cfg); err != nil {
		t.Fatalf("Set(%+v): %v", cfg, err)
	}
}

// wantEvents compares what the kernel reported with want.
func wantEvents(t *testing.T, when string, got, want []string) {
	t.Helper()
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("%s: rtnetlink notifications (-want +got):\n%s", when, d)
	}
}

// addForeign gives the TUN device state that is not Warren's: a
// link-scope address and a route of each family with another protocol.
func addForeign(t *testing.T) {
	t.Helper()
	ipCmd(t, "addr", "add", "169.254.7.7/32", "dev", tunName, "scope", "link")
	ipCmd(t, "route", "add", "203.0.113.0/24", "dev", tunName, "proto", "static")
	ipCmd(t, "-6", "route", "add", "fd99::/16", "dev", tunName, "proto", "static")
}

// checkForeign checks that what addForeign added is still there.
func checkForeign(t *testing.T, when string) {
	t.Helper()
	want := []string{"203.0.113.0/24 proto 4 scope 253 metric 0", "fd99::/16 proto 4 metric 1024"}
	if d := cmp.Diff(want, ipRoutes(t, tunName, "4")); d != "" {
		t.Errorf("%s: other protocols' routes via %s (-want +got):\n%s", when, tunName, d)
	}
	if out := ipCmd(t, "addr", "show", "dev", tunName); !strings.Contains(out, "169.254.7.7/32") {
		t.Errorf("%s: the link-scope address 169.254.7.7/32 is gone from %s:\n%s", when, tunName, out)
	}
}

// The configuration TestRouter starts from: an overlay address of each
// family and routes in documentation and private ranges.
func firstConfig() *Config {
	return &Config{
		Interface: tunName,
		MTU:       1280,
		Addresses: pfx("100.96.0.2/32", "fd7a:115c:a1e0::2/128"),
		Routes:    pfx("192.168.0.0/24", "10.20.0.0/16", "198.51.100.0/24", "2001:db8:1::/48", "fd00:1234::/32"),
	}
}

var firstRoutes = []string{
	"10.20.0.0/16 proto 87 scope 253 metric 0",
	"192.168.0.0/24 proto 87 scope 253 metric 0",
	"198.51.100.0/24 proto 87 scope 253 metric 0",
	"2001:db8:1::/48 proto 87 metric 1024",
	"fd00:1234::/32 proto 87 metric 1024",
}

// secondConfig keeps three routes of firstConfig, drops two, adds two, and
// moves the IPv4 address.
func secondConfig() *Config {
	return &Config{
		Interface: tunName,
		MTU:       1280,
		Addresses: pfx("100.96.0.3/32", "fd7a:115c:a1e0::2/128"),
		Routes:    pfx("192.168.0.0/24", "198.51.100.0/24", "2001:db8:1::/48", "172.16.5.0/24", "2001:db8:2::/48"),
	}
}

var secondRoutes = []string{
	"172.16.5.0/24 proto 87 scope 253 metric 0",
	"192.168.0.0/24 proto 87 scope 253 metric 0",
	"198.51.100.0/24 proto 87 scope 253 metric 0",
	"2001:db8:1::/48 proto 87 metric 1024",
	"2001:db8:2::/48 proto 87 metric 1024",
}

func TestRouter(t *testing.T) {
	inNetns(t, func(t *testing.T) {
		_, link := newTUN(t, tunName)
		if got := link.Attrs().MTU; got != 1280 {
			t.Errorf("CreateTUN: mtu %d, want 1280", got)
		}
		if got := link.Attrs().TxQLen; got != tunQueueLen {
			t.Errorf("CreateTUN: transmit queue %d packets, want %d", got, tunQueueLen)
		}
		r, err := NewRouter(testLogger(t))
		if err != nil {
			t.Fatalf("NewRouter: %v", err)
		}
		t.Cleanup(func() { r.Close() })

		// First Set: addresses, then routes; nothing to delete.
		events := record(t, link, func() { mustSet(t, r, firstConfig()) })
		checkState(t, "first Set", tunName, firstRoutes, []string{"100.96.0.2/32", "fd7a:115c:a1e0::2/128"})
		wantEvents(t, "first Set", events, []string{
			"add addr 100.96.0.2/32",
			"add route 10.20.0.0/16 metric 0",
			"add route 192.168.0.0/24 metric 0",
			"add route 198.51.100.0/24 metric 0",
			"add route 2001:db8:1::/48 metric 1024",
			"add route fd00:1234::/32 metric 1024",
			"add addr fd7a:115c:a1e0::2/128 (async)",
		})
		l, err := netlink.LinkByName(tunName)
		if err != nil {
			t.Fatal(err)
		}
		if l.Attrs().Flags&net.FlagUp == 0 {
			t.Errorf("after Set, %s is not up", tunName)
		}

		// The same Config again changes nothing.
		events = record(t, link, func() { mustSet(t, r, firstConfig()) })
		wantEvents(t, "identical Set", events, nil)

		// A changed Config: exactly the difference, additions first; the
		// three routes both Configs share are neither deleted nor re-added.
		events = record(t, link, func() { mustSet(t, r, secondConfig()) })
		checkState(t, "changed Set", tunName, secondRoutes, []string{"100.96.0.3/32", "fd7a:115c:a1e0::2/128"})
		wantEvents(t, "changed Set", events, []string{
			"add addr 100.96.0.3/32",
			"add route 172.16.5.0/24 metric 0",
			"add route 2001:db8:2::/48 metric 1024",
			"del route 10.20.0.0/16 metric 0",
			"del route fd00:1234::/32 metric 1024",
			"del addr 100.96.0.2/32",
		})
		for _, kept := range []string{"192.168.0.0/24", "198.51.100.0/24", "2001:db8:1::/48"} {
			for _, ev := range events {
				if strings.Contains(ev, " "+kept+" ") {
					t.Errorf("changed Set touched kept route %s: %q", kept, ev)
				}
			}
		}

		// Somebody else's routes and link-local address on our interface
		// are not ours to remove. (The address also keeps the kernel from
		// flushing every IPv4 route through the interface when Warren
		// removes the last IPv4 address of its own.)
		addForeign(t)

		// Deleted behind the Router's back: the next Set restores exactly that.
		ipCmd(t, "route", "del", "192.168.0.0/24", "dev", tunName, "proto", "87")
		ipCmd(t, "-6", "route", "del", "2001:db8:1::/48", "dev", tunName)
		ipCmd(t, "addr", "del", "fd7a:115c:a1e0::2/128", "dev", tunName)
		checkState(t, "after deleting behind its back", tunName,
			[]string{"172.16.5.0/24 proto 87 scope 253 metric 0", "198.51.100.0/24 proto 87 scope 253 metric 0", "2001:db8:2::/48 proto 87 metric 1024"},
			[]string{"100.96.0.3/32"})
		events = record(t, link, func() { mustSet(t, r, secondConfig()) })
		checkState(t, "restoring Set", tunName, secondRoutes, []string{"100.96.0.3/32", "fd7a:115c:a1e0::2/128"})
		wantEvents(t, "restoring Set", events, []string{
			"add route 192.168.0.0/24 metric 0",
			"add route 2001:db8:1::/48 metric 1024",
			"add addr fd7a:115c:a1e0::2/128 (async)",
		})

		// A metric change adds every route at the new metric before it
		// removes the old one.
		third := secondConfig()
		third.Metric = 50
		events = record(t, link, func() { mustSet(t, r, third) })
		checkState(t, "metric change", tunName, []string{
			"172.16.5.0/24 proto 87 scope 253 metric 50",
			"192.168.0.0/24 proto 87 scope 253 metric 50",
			"198.51.100.0/24 proto 87 scope 253 metric 50",
			"2001:db8:1::/48 proto 87 metric 50",
			"2001:db8:2::/48 proto 87 metric 50",
		}, []string{"100.96.0.3/32", "fd7a:115c:a1e0::2/128"})
		wantEvents(t, "metric change", events, []string{
			"add route 172.16.5.0/24 metric 50",
			"add route 192.168.0.0/24 metric 50",
			"add route 198.51.100.0/24 metric 50",
			"add route 2001:db8:1::/48 metric 50",
			"add route 2001:db8:2::/48 metric 50",
			"del route 172.16.5.0/24 metric 0",
			"del route 192.168.0.0/24 metric 0",
			"del route 198.51.100.0/24 metric 0",
			"del route 2001:db8:1::/48 metric 1024",
			"del route 2001:db8:2::/48 metric 1024",
		})

		// Moving an IPv4 address within its subnet: the kernel deletes a
		// primary address's secondaries with it (promote_secondaries is off
		// in a new namespace), and the second pass puts the new one back.
		if b, err := os.ReadFile("/proc/sys/net/ipv4/conf/" + tunName + "/promote_secondaries"); err != nil || strings.TrimSpace(string(b)) != "0" {
			t.Logf("promote_secondaries = %q (%v); the subnet move below proves less", b, err)
		}
		subnet := secondConfig()
		subnet.Addresses = pfx("100.96.0.2/24", "fd7a:115c:a1e0::2/128")
		mustSet(t, r, subnet)
		subnet.Addresses = pfx("100.96.0.3/24", "fd7a:115c:a1e0::2/128")
		mustSet(t, r, subnet)
		checkState(t, "address moved within its subnet", tunName, secondRoutes, []string{"100.96.0.3/24", "fd7a:115c:a1e0::2/128"})

		// Set(nil) removes all of Warren's state and only that.
		events = record(t, link, func() { mustSet(t, r, nil) })
		checkState(t, "Set(nil)", tunName, nil, nil)
		wantEvents(t, "Set(nil)", events, []string{
			"del route 172.16.5.0/24 metric 0",
			"del route 192.168.0.0/24 metric 0",
			"del route 198.51.100.0/24 metric 0",
			"del route 2001:db8:1::/48 metric 1024",
			"del route 2001:db8:2::/48 metric 1024",
			"del addr 100.96.0.3/24",
			"del addr fd7a:115c:a1e0::2/128",
		})
		checkForeign(t, "Set(nil)")
		events = record(t, link, func() { mustSet(t, r, nil) })
		wantEvents(t, "second Set(nil)", events, nil)

		// Close removes everything; closing again is a no-op; Set after
		// Close fails.
		mustSet(t, r, firstConfig())
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		checkState(t, "Close", tunName, nil, nil)
		if err := r.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if err := r.Set(firstConfig()); !errors.Is(err, ErrClosed) {
			t.Errorf("Set after Close = %v, want ErrClosed", err)
		}
		checkState(t, "Set after Close", tunName, nil, nil)
		checkForeign(t, "Close")
	})
}

func TestRouterErrors(t *testing.T) {
	inNetns(t, func(t *testing.T) {
		_, link := newTUN(t, tunName)
		newLAN(t, "lan0", "10.1.0.2/24")
		r, err := NewRouter(testLogger(t))
		if err != nil {
			t.Fatalf("NewRouter: %v", err)
		}
		t.Cleanup(func() { r.Close() })

		// An invalid Config changes nothing.
		bad := firstConfig()
		bad.Routes = append(bad.Routes, netip.MustParsePrefix("10.0.0.1/8"))
		events := record(t, link, func() {
			if err := r.Set(bad); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("Set(invalid) = %v, want ErrInvalidConfig", err)
			}
		})
		wantEvents(t, "invalid Set", events, nil)

		// A device that is not a TUN device is not managed, and its
		// addresses survive.
		notTUN := firstConfig()
		notTUN.Interface = "lan0"
		if err := r.Set(notTUN); !errors.Is(err, ErrNotTUN) {
			t.Errorf("Set on a veth device = %v, want ErrNotTUN", err)
		}
		if d := cmp.Diff([]string{"10.1.0.2/24"}, ipAddrs(t, "lan0")); d != "" {
			t.Errorf("addresses of lan0 (-want +got):\n%s", d)
		}
		missing := firstConfig()
		missing.Interface = "absent0"
		if err := r.Set(missing); err == nil || !strings.Contains(err.Error(), "finding interface absent0") {
			t.Errorf("Set on a missing interface = %v, want an error finding it", err)
		}

		// A route that conflicts with someone else's at the same metric
		// fails; everything else is still applied and the error names the
		// route.
		ipCmd(t, "route", "add", "198.51.100.0/24", "dev", "lan0")
		err = r.Set(firstConfig())
		if err == nil || !errors.Is(err, unix.EEXIST) || !strings.Contains(err.Error(), "198.51.100.0/24") {
			t.Errorf("Set with a conflicting route = %v, want EEXIST naming 198.51.100.0/24", err)
		}
		if n := strings.Count(fmt.Sprint(err), "\n"); n != 0 {
			t.Errorf("Set with one conflict returned %d joined errors, want 1: %v", n+1, err)
		}
		checkState(t, "Set with a conflict", tunName,
			slices.DeleteFunc(slices.Clone(firstRoutes), func(s string) bool { return strings.HasPrefix(s, "198.51.100.0/24 ") }),
			[]string{"100.96.0.2/32", "fd7a:115c:a1e0::2/128"})

		// Two failures are both reported.
		ipCmd(t, "-6", "route", "del", "fd00:1234::/32", "dev", tunName, "proto", "87")
		ipCmd(t, "-6", "route", "add", "fd00:1234::/32", "dev", "lan0", "metric", "1024")
		err = r.Set(firstConfig())
		if err == nil || !strings.Contains(err.Error(), "198.51.100.0/24") || !strings.Contains(err.Error(), "fd00:1234::/32") {
			t.Errorf("Set with two conflicts = %v, want both named", err)
		}

		// Once the conflicts are gone, the next Set completes the job.
		ipCmd(t, "route", "del", "198.51.100.0/24", "dev", "lan0")
		ipCmd(t, "-6", "route", "del", "fd00:1234::/32", "dev", "lan0")
		mustSet(t, r, firstConfig())
		checkState(t, "after the conflicts went", tunName, firstRoutes, []string{"100.96.0.2/32", "fd7a:115c:a1e0::2/128"})

		// Moving to another interface clears the first one.
		newTUN(t, "warren1")
		moved := firstConfig()
		moved.Interface = "warren1"
		mustSet(t, r, moved)
		checkState(t, "moved: old interface", tunName, nil, nil)
		checkState(t, "moved: new interface", "warren1", firstRoutes, []string{"100.96.0.2/32", "fd7a:115c:a1e0::2/128"})
		mustSet(t, r, nil)
		checkState(t, "Set(nil) after the move", "warren1", nil, nil)
	})
}

func TestRouterInterfaceGone(t *testing.T) {
	inNetns(t, func(t *testing.T) {
		dev, _ := newTUN(t, tunName)
		r, err := NewRouter(testLogger(t))
		if err != nil {
			t.Fatalf("NewRouter: %v", err)
		}
		mustSet(t, r, firstConfig())
		dev.Close()
		waitFor(t, tunName+" to disappear", func() error {
			if _, err := netlink.LinkByName(tunName); err == nil {
				return errors.New("still there")
			}
			return nil
		})
		if err := r.Set(nil); err != nil {
			t.Errorf("Set(nil) after the device went: %v", err)
		}
		if err := r.Close(); err != nil {
			t.Errorf("Close after the device went: %v", err)
		}
	})
}

func TestCreateTUN(t *testing.T) {
	inNetns(t, func(t *testing.T) {
		dev, link := newTUN(t, tunName)
		if name, err := dev.Name(); err != nil || name != tunName {
			t.Errorf("Name() = %q, %v; want %q", name, err, tunName)
		}
		if got := link.Type(); got != "tuntap" {
			t.Errorf("link type %q, want tuntap", got)
		}
		if _, err := CreateTUN(tunName, 1280); err == nil || !strings.Contains(err.Error(), "in use") {
			t.Errorf("CreateTUN of a device in use = %v, want an in-use error", err)
		}
		newLAN(t, "lan0")
		if _, err := CreateTUN("lan0", 1280); err == nil || !strings.Contains(err.Error(), "not a tun device?") {
			t.Errorf("CreateTUN over a veth device = %v, want a not-a-tun error", err)
		}
		for _, tc := range []struct {
			name string
			mtu  int
		}{{"bad/name", 1280}, {"", 1280}, {"warren9", 10}, {"warren9", 70000}} {
			if _, err := CreateTUN(tc.name, tc.mtu); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("CreateTUN(%q, %d) = %v, want ErrInvalidConfig", tc.name, tc.mtu, err)
			}
		}
		if err := dev.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		waitFor(t, tunName+" to disappear", func() error {
			if _, err := netlink.LinkByName(tunName); err == nil {
				return errors.New("still there")
			}
			return nil
		})
	})
}

// crashExit is the exit code of a grandchild that installed its state and
// exited without Close, as a crashed daemon would.
const crashExit = 3

func TestCleanupAfterCrash(t *testing.T) {
	inNetns(t, func(t *testing.T) {
		if os.Getenv(roleEnv) == "crash" {
			// The crashing daemon: the TUN device belongs to the parent,
			// which keeps it (and so the state on it) alive.
			r, err := NewRouter(testLogger(t))
			if err != nil {
				t.Fatalf("NewRouter: %v", err)
			}
			mustSet(t, r, firstConfig())
			os.Exit(crashExit)
		}
		newTUN(t, tunName)
		lan := newLAN(t, "lan0", "10.1.0.2/24")
		if code := runRole(t, "crash"); code != crashExit {
			t.Fatalf("crashing daemon exited %d, want %d", code, crashExit)
		}
		checkState(t, "after the crash", tunName, firstRoutes, []string{"100.96.0.2/32", "fd7a:115c:a1e0::2/128"})

		// Someone else's state on the interface, and a Warren-marked route
		// on a device that is not a TUN device.
		addForeign(t)
		ipCmd(t, "route", "add", "192.0.2.0/24", "dev", "lan0", "proto", "87")

		if err := Cleanup(tunName); err != nil {
			t.Fatalf("Cleanup(%q): %v", tunName, err)
		}
		checkState(t, "after Cleanup", tunName, nil, nil)
		checkForeign(t, "Cleanup")
		if err := Cleanup(tunName); err != nil {
			t.Errorf("second Cleanup: %v", err)
		}

		// On a device that is not a TUN device only marked routes go.
		if err := Cleanup("lan0"); err != nil {
			t.Errorf("Cleanup(lan0): %v", err)
		}
		checkState(t, "Cleanup(lan0)", "lan0", nil, []string{"10.1.0.2/24"})
		if err := netlink.LinkSetDown(lan); err != nil {
			t.Fatal(err)
		}

		if err := Cleanup("absent0"); err != nil {
			t.Errorf("Cleanup of a missing interface = %v, want nil", err)
		}
		if err := Cleanup("bad/name"); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("Cleanup(bad/name) = %v, want ErrInvalidConfig", err)
		}
	})
}

func TestHostQueries(t *testing.T) {
	inNetns(t, func(t *testing.T) {
		newTUN(t, tunName)
		newLAN(t, "lan0", "10.1.0.2/24", "2001:db8:a::2/64")
		newLAN(t, "lan1", "10.9.0.2/24")
		down := newLAN(t, "lan2", "10.2.0.2/24")
		if err := netlink.LinkSetDown(down); err != nil {
			t.Fatal(err)
		}
		ipCmd(t, "route", "add", "default", "via", "10.1.0.1", "dev", "lan0")
		ipCmd(t, "route", "add", "default", "via", "10.9.0.1", "dev", "lan1", "metric", "100")
		ipCmd(t, "-6", "route", "add", "default", "via", "2001:db8:a::1", "dev", "lan0")
		ipCmd(t, "route", "add", "10.50.0.0/16", "via", "10.1.0.254") // not a default route

		r, err := NewRouter(testLogger(t))
		if err != nil {
			t.Fatalf("NewRouter: %v", err)
		}
		t.Cleanup(func() { r.Close() })
		cfg := firstConfig()
		cfg.Routes = append(cfg.Routes, pfx("0.0.0.0/0", "::/0")...) // Warren's own default routes
		cfg.Metric = 10
		mustSet(t, r, cfg)

		gws, err := DefaultGateways()
		if err != nil {
			t.Fatalf("DefaultGateways: %v", err)
		}
		want := []netip.Addr{netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("10.9.0.1"), netip.MustParseAddr("2001:db8:a::1")}
		if d := cmp.Diff(want, gws, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
			t.Errorf("DefaultGateways (-want +got):\n%s", d)
		}

		cmpP := cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })
		local, err := LocalPrefixes(tunName)
		if err != nil {
			t.Fatalf("LocalPrefixes: %v", err)
		}
		if d := cmp.Diff(pfx("10.1.0.0/24", "10.9.0.0/24", "2001:db8:a::/64"), local, cmpP); d != "" {
			t.Errorf("LocalPrefixes(%q) (-want +got):\n%s", tunName, d)
		}
		all, err := LocalPrefixes("")
		if err != nil {
			t.Fatalf("LocalPrefixes: %v", err)
		}
		if d := cmp.Diff(pfx("10.1.0.0/24", "10.9.0.0/24", "100.96.0.2/32", "2001:db8:a::/64", "fd7a:115c:a1e0::2/128"), all, cmpP); d != "" {
			t.Errorf("LocalPrefixes(\"\") (-want +got):\n%s", d)
		}
	})
}
