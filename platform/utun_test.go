package platform

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// The darwin Router's plan, run on any system against fakeKernel: which
// routing messages and address ioctls Set sends for an installed state and
// a Config, and what the kernel's table is afterwards.

const (
	ourFlags   = "0x8801" // RTF_UP|RTF_STATIC|RTF_PROTO1
	ourHost    = "0x8805" // … |RTF_HOST
	gwFlags    = 0x803    // RTF_UP|RTF_GATEWAY|RTF_STATIC
	en0, utun3 = 4, 10
	utun7      = 9
)

// newFakeMac is a Mac on a LAN with another VPN's utun3 and Warren's
// utun7 (down, MTU 1500, no address yet).
func newFakeMac() *fakeKernel {
	return &fakeKernel{
		links: map[string]*fakeLink{
			"en0":   {index: en0, mtu: 1500, up: true, addrs: pfx("192.168.1.20/24", "fe80::1c2a/64")},
			"utun3": {index: utun3, mtu: 1380, up: true, addrs: pfx("10.8.0.2/32")},
			"utun7": {index: utun7, mtu: 1500},
			"utun8": {index: 11, mtu: 1500},
		},
		routes: []fakeRoute{
			{dst: netip.MustParsePrefix("0.0.0.0/0"), index: en0, flags: gwFlags, gwAddr: netip.MustParseAddr("192.168.1.1")},
			{dst: netip.MustParsePrefix("::/0"), index: en0, flags: gwFlags, gwAddr: netip.MustParseAddr("fe80::1")},
			{dst: netip.MustParsePrefix("192.168.1.0/24"), index: en0, flags: 0x101, gwLink: en0}, // RTF_UP|RTF_CLONING
			{dst: netip.MustParsePrefix("10.8.0.0/24"), index: utun3, flags: 0x801, gwLink: utun3},
		},
	}
}

// macTable is the fake Mac's table before Warren, with extra lines.
func macTable(extra ...string) []string {
	t := append([]string{
		"addr en0 192.168.1.20/24",
		"addr en0 fe80::1c2a/64",
		"addr utun3 10.8.0.2/32",
		"route 0.0.0.0/0 gw 192.168.1.1 on en0 flags 0x803",
		"route 10.8.0.0/24 -interface utun3 flags 0x801",
		"route 192.168.1.0/24 -interface en0 flags 0x101",
		"route ::/0 gw fe80::1 on en0 flags 0x803",
	}, extra...)
	slices.Sort(t)
	return t
}

func TestBSDRouterSet(t *testing.T) {
	cfg := func(iface string, addrs, rts []netip.Prefix) *Config {
		return &Config{Interface: iface, MTU: 1280, Addresses: addrs, Routes: rts}
	}
	full := cfg("utun7", pfx("100.96.0.2/32", "fd7a:115c:a1e0::2/128"), pfx("10.0.0.0/8", "192.168.0.0/24", "2001:db8::/32"))
	fullTable := []string{
		"addr utun7 100.96.0.2/32",
		"addr utun7 fd7a:115c:a1e0::2/128",
		"route 10.0.0.0/8 -interface utun7 flags " + ourFlags,
		"route 192.168.0.0/24 -interface utun7 flags " + ourFlags,
		"route 2001:db8::/32 -interface utun7 flags " + ourFlags,
	}
	tests := []struct {
		name   string
		before *Config           // set first, by the same Router
		change func(*fakeKernel) // then done behind the Router's back
		cfg    *Config
		ops    []string // the changes Set asks of the kernel, in order
		table  []string // the fake Mac's table after, beyond macTable
		err    string   // substring of Set's error; "" for none
	}{
		{
			name: "from nothing: mtu, up, addresses before routes",
			cfg:  full,
			ops: []string{
				"mtu utun7 1280",
				"up utun7",
				"ifconfig utun7 inet 100.96.0.2/32 100.96.0.2 alias",
				"ifconfig utun7 inet6 fd7a:115c:a1e0::2/128 alias",
				"route add 10.0.0.0/8 -interface utun7",
				"route add 192.168.0.0/24 -interface utun7",
				"route add 2001:db8::/32 -interface utun7",
			},
			table: fullTable,
		},
		{
			name:   "a state that matches is only read",
			before: full,
			cfg:    full,
			table:  fullTable,
		},
		{
			name:   "new routes are added before stale ones go; kept ones are not touched",
			before: full,
			cfg:    cfg("utun7", pfx("100.96.0.2/32", "fd7a:115c:a1e0::2/128"), pfx("10.0.0.0/8", "172.16.0.0/12", "2001:db8::/32")),
			ops: []string{
				"route add 172.16.0.0/12 -interface utun7",
				"route delete 192.168.0.0/24",
			},
			table: []string{
				"addr utun7 100.96.0.2/32",
				"addr utun7 fd7a:115c:a1e0::2/128",
				"route 10.0.0.0/8 -interface utun7 flags " + ourFlags,
				"route 172.16.0.0/12 -interface utun7 flags " + ourFlags,
				"route 2001:db8::/32 -interface utun7 flags " + ourFlags,
			},
		},
		{
			name:   "what was removed behind its back is put back",
			before: full,
			change: func(k *fakeKernel) {
				k.routes = slices.DeleteFunc(k.routes, func(r fakeRoute) bool { return r.dst == netip.MustParsePrefix("192.168.0.0/24") })
				k.links["utun7"].addrs = pfx("fd7a:115c:a1e0::2/128")
			},
			cfg: full,
			ops: []string{
				"ifconfig utun7 inet 100.96.0.2/32 100.96.0.2 alias",
				"route add 192.168.0.0/24 -interface utun7",
			},
			table: fullTable,
		},
		{
			name: "routes through utun7 without Warren's mark, or cloned from one, are left alone",
			change: func(k *fakeKernel) {
				k.routes = append(k.routes,
					fakeRoute{dst: netip.MustParsePrefix("172.16.0.0/12"), index: utun7, flags: 0x801, gwLink: utun7},
					fakeRoute{dst: netip.MustParsePrefix("10.1.2.3/32"), index: utun7, flags: 0x28005, gwLink: utun7},                          // RTF_WASCLONED|RTF_PROTO1|RTF_HOST|RTF_UP
					fakeRoute{dst: netip.MustParsePrefix("10.9.0.0/16"), index: utun7, flags: 0x8803, gwAddr: netip.MustParseAddr("10.9.0.1")}, // a gateway route
				)
			},
			cfg: cfg("utun7", nil, pfx("10.0.0.0/8")),
			ops: []string{"mtu utun7 1280", "up utun7", "route add 10.0.0.0/8 -interface utun7"},
			table: []string{
				"route 10.0.0.0/8 -interface utun7 flags " + ourFlags,
				"route 10.1.2.3/32 -interface utun7 flags 0x28005",
				"route 10.9.0.0/16 gw 10.9.0.1 on utun7 flags 0x8803",
				"route 172.16.0.0/12 -interface utun7 flags 0x801",
			},
		},
		{
			name: "a route somebody else has to the same prefix is reported; the rest is applied",
			cfg:  cfg("utun7", pfx("100.96.0.2/32"), pfx("10.0.0.0/8", "192.168.1.0/24")),
			ops: []string{
				"mtu utun7 1280", "up utun7",
				"ifconfig utun7 inet 100.96.0.2/32 100.96.0.2 alias",
				"route add 10.0.0.0/8 -interface utun7",
				"route add 192.168.1.0/24 -interface utun7",
			},
			table: []string{
				"addr utun7 100.96.0.2/32",
				"route 10.0.0.0/8 -interface utun7 flags " + ourFlags,
			},
			err: "adding route 192.168.1.0/24 via utun7: a route to it that warren does not own exists",
		},
		{
			name:   "set(nil) removes only Warren's",
			before: full,
			change: func(k *fakeKernel) {
				k.routes = append(k.routes, fakeRoute{dst: netip.MustParsePrefix("172.16.0.0/12"), index: utun7, flags: 0x801, gwLink: utun7})
			},
			ops: []string{
				"route delete 10.0.0.0/8",
				"route delete 192.168.0.0/24",
				"route delete 2001:db8::/32",
				"ifconfig utun7 100.96.0.2 delete",
				"ifconfig utun7 fd7a:115c:a1e0::2 delete",
			},
			table: []string{"route 172.16.0.0/12 -interface utun7 flags 0x801"},
		},
		{
			name:   "moving to another utun clears the old one",
			before: cfg("utun7", pfx("100.96.0.2/32"), pfx("10.0.0.0/8")),
			cfg:    cfg("utun8", pfx("100.96.0.2/32"), pfx("10.0.0.0/8")),
			ops: []string{
				"route delete 10.0.0.0/8",
				"ifconfig utun7 100.96.0.2 delete",
				"mtu utun8 1280", "up utun8",
				"ifconfig utun8 inet 100.96.0.2/32 100.96.0.2 alias",
				"route add 10.0.0.0/8 -interface utun8",
			},
			table: []string{
				"addr utun8 100.96.0.2/32",
				"route 10.0.0.0/8 -interface utun8 flags " + ourFlags,
			},
		},
		{
			name: "host routes carry RTF_HOST and no netmask",
			cfg:  cfg("utun7", nil, pfx("203.0.113.7/32", "2001:db8::1/128")),
			ops: []string{
				"mtu utun7 1280", "up utun7",
				"route add 203.0.113.7/32 -interface utun7",
				"route add 2001:db8::1/128 -interface utun7",
			},
			table: []string{
				"route 2001:db8::1/128 -interface utun7 flags " + ourHost,
				"route 203.0.113.7/32 -interface utun7 flags " + ourHost,
			},
		},
		{
			name:   "the metric is not used: macOS routes have none",
			before: &Config{Interface: "utun7", Routes: pfx("10.0.0.0/8", "2001:db8::/32"), Metric: 50},
			cfg:    &Config{Interface: "utun7", Routes: pfx("10.0.0.0/8", "2001:db8::/32")},
			table: []string{
				"route 10.0.0.0/8 -interface utun7 flags " + ourFlags,
				"route 2001:db8::/32 -interface utun7 flags " + ourFlags,
			},
		},
		{
			name:   "an ipv4 address changing its prefix length is replaced, not deleted",
			before: cfg("utun7", pfx("100.96.0.2/32"), nil),
			cfg:    cfg("utun7", pfx("100.96.0.2/12"), nil),
			ops:    []string{"ifconfig utun7 inet 100.96.0.2/12 100.96.0.2 alias"},
			table:  []string{"addr utun7 100.96.0.2/12"},
		},
		{
			name:   "an ipv6 address changing its prefix length is deleted first",
			before: cfg("utun7", pfx("fd7a::2/128"), nil),
			cfg:    cfg("utun7", pfx("fd7a::2/64"), nil),
			ops:    []string{"ifconfig utun7 fd7a::2 delete", "ifconfig utun7 inet6 fd7a::2/64 alias"},
			table:  []string{"addr utun7 fd7a::2/64"},
		},
		{
			name: "not a utun device",
			cfg:  cfg("en0", pfx("100.96.0.2/32"), nil),
			err:  "interface en0 is not a utun device",
		},
		{
			name: "no such interface",
			cfg:  cfg("utun5", pfx("100.96.0.2/32"), nil),
			err:  "finding interface utun5: no such interface",
		},
		{
			name: "invalid config changes nothing",
			cfg:  &Config{Interface: "utun7", Routes: pfx("10.0.0.1/8")},
			err:  "host bits set",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newFakeMac()
			r := newRouter(newBSDRouter(nil, k))
			if tt.before != nil {
				if err := r.Set(tt.before); err != nil {
					t.Fatalf("Set(before) = %v", err)
				}
			}
			if tt.change != nil {
				tt.change(k)
			}
			k.ops = nil
			err := r.Set(tt.cfg)
			switch {
			case tt.err == "" && err != nil:
				t.Errorf("Set = %v, want nil", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Errorf("Set = %v, want an error containing %q", err, tt.err)
			}
			if d := cmp.Diff(tt.ops, k.ops, cmpopts.EquateEmpty()); d != "" {
				t.Errorf("changes sent (-want +got):\n%s", d)
			}
			if d := cmp.Diff(macTable(tt.table...), k.table()); d != "" {
				t.Errorf("table after (-want +got):\n%s", d)
			}
		})
	}
}

func TestBSDRouterKeepsGoing(t *testing.T) {
	k := newFakeMac()
	k.fail = map[string]error{"route add 10.0.0.0/8 -interface utun7": syscall.EPERM}
	r := newRouter(newBSDRouter(nil, k))
	err := r.Set(&Config{Interface: "utun7", Addresses: pfx("100.96.0.2/32"), Routes: pfx("10.0.0.0/8", "192.168.0.0/24")})
	if !errors.Is(err, syscall.EPERM) || !strings.Contains(err.Error(), "adding route 10.0.0.0/8 via utun7") {
		t.Errorf("Set = %v, want the refused route's EPERM", err)
	}
	want := macTable("addr utun7 100.96.0.2/32", "route 192.168.0.0/24 -interface utun7 flags "+ourFlags)
	if d := cmp.Diff(want, k.table()); d != "" {
		t.Errorf("table after (-want +got):\n%s", d)
	}
}

func TestBSDRouterClose(t *testing.T) {
	k := newFakeMac()
	r := newRouter(newBSDRouter(nil, k))
	if err := r.Set(&Config{Interface: "utun7", Addresses: pfx("100.96.0.2/32"), Routes: pfx("10.0.0.0/8")}); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if d := cmp.Diff(macTable(), k.table()); d != "" {
		t.Errorf("table after Close (-want +got):\n%s", d)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	if err := r.Set(&Config{Interface: "utun7"}); !errors.Is(err, ErrClosed) {
		t.Errorf("Set after Close = %v, want ErrClosed", err)
	}
}

// TestBSDClear is Cleanup's work: a crashed run's routes go, the
// addresses of a utun that exists now (another process's) stay, and a
// missing interface is clean.
func TestBSDClear(t *testing.T) {
	k := newFakeMac()
	k.links["utun7"].addrs = pfx("100.96.0.9/32")
	k.routes = append(k.routes,
		fakeRoute{dst: netip.MustParsePrefix("10.0.0.0/8"), index: utun7, flags: rtfUp | rtfStatic | rtfProto1, gwLink: utun7},
		fakeRoute{dst: netip.MustParsePrefix("172.16.0.0/12"), index: utun7, flags: 0x801, gwLink: utun7},
	)
	r := newBSDRouter(nil, k)
	if err := r.clearLink("utun7", false); err != nil {
		t.Fatal(err)
	}
	if err := r.clearLink("utun5", false); err != nil {
		t.Errorf("clearLink(utun5) = %v, want nil", err)
	}
	want := macTable("addr utun7 100.96.0.9/32", "route 172.16.0.0/12 -interface utun7 flags 0x801")
	if d := cmp.Diff(want, k.table()); d != "" {
		t.Errorf("table after (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"route delete 10.0.0.0/8"}, k.ops); d != "" {
		t.Errorf("changes (-want +got):\n%s", d)
	}
}

// TestUtunStateGone: removing what is already gone succeeds.
func TestUtunStateGone(t *testing.T) {
	k := newFakeMac()
	var seq int32
	u := &utunState{k: k, name: "utun7", index: utun7, ownAddrs: true, seq: &seq}
	if err := u.delRoute(route{Prefix: netip.MustParsePrefix("10.0.0.0/8")}); err != nil {
		t.Errorf("delRoute of a missing route = %v, want nil", err)
	}
	k.links["utun7"].addrs = pfx("100.96.0.2/32")
	k.fail = map[string]error{"ifconfig utun7 100.96.0.2 delete": syscall.EADDRNOTAVAIL}
	if err := u.delAddr(netip.MustParsePrefix("100.96.0.2/32")); err != nil {
		t.Errorf("delAddr of an address the kernel no longer has = %v, want nil", err)
	}
	if seq != 1 {
		t.Errorf("rtm_seq after one message = %d, want 1", seq)
	}
}
