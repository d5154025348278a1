package platform

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func pfx(ss ...string) []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range ss {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}

// rts parses "prefix@metric" strings.
func rts(ss ...string) []route {
	var rs []route
	for _, s := range ss {
		p, m, _ := strings.Cut(s, "@")
		var metric uint32
		if m != "" {
			fmt.Sscan(m, &metric)
		}
		rs = append(rs, route{Prefix: netip.MustParsePrefix(p), Metric: metric})
	}
	return rs
}

var cmpState = cmp.Options{
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
	cmpopts.EquateEmpty(),
}

func TestValidate(t *testing.T) {
	ok := func() Config {
		return Config{
			Interface: "warren0",
			MTU:       1280,
			Addresses: pfx("100.96.0.2/32", "fd7a:115c:a1e0::2/128"),
			Routes:    pfx("192.168.0.0/24", "2001:db8::/32", "0.0.0.0/0"),
		}
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string // substring of the error; "" for valid
	}{
		{name: "valid", mutate: func(*Config) {}},
		{name: "zero mtu keeps the device's", mutate: func(c *Config) { c.MTU = 0 }},
		{name: "empty", mutate: func(c *Config) { *c = Config{Interface: "w"} }},
		{name: "no interface", mutate: func(c *Config) { c.Interface = "" }, want: "no interface name"},
		{name: "long interface", mutate: func(c *Config) { c.Interface = "warren0123456789" }, want: "longer than 15"},
		{name: "slash in interface", mutate: func(c *Config) { c.Interface = "a/b" }, want: "not a valid interface name"},
		{name: "space in interface", mutate: func(c *Config) { c.Interface = "a b" }, want: "not a valid interface name"},
		{name: "dotdot interface", mutate: func(c *Config) { c.Interface = ".." }, want: "not a valid interface name"},
		{name: "mtu too small", mutate: func(c *Config) { c.MTU = 67 }, want: "mtu 67 is outside"},
		{name: "mtu too large", mutate: func(c *Config) { c.MTU = 65536 }, want: "mtu 65536 is outside"},
		{name: "small mtu with ipv6", mutate: func(c *Config) { c.MTU = 1279 }, want: "below IPv6's minimum"},
		{name: "small mtu ipv4 only", mutate: func(c *Config) {
			c.MTU, c.Addresses, c.Routes = 576, pfx("100.96.0.2/32"), pfx("10.0.0.0/8")
		}},
		{name: "invalid address", mutate: func(c *Config) { c.Addresses = []netip.Prefix{{}} }, want: "not a valid prefix"},
		{name: "mapped address", mutate: func(c *Config) { c.Addresses = pfx("::ffff:100.96.0.2/128") }, want: "IPv4-mapped"},
		{name: "link-local address", mutate: func(c *Config) { c.Addresses = pfx("fe80::1/64") }, want: "not a global unicast"},
		{name: "multicast address", mutate: func(c *Config) { c.Addresses = pfx("224.0.0.1/32") }, want: "not a global unicast"},
		{name: "loopback address", mutate: func(c *Config) { c.Addresses = pfx("127.0.0.2/8") }, want: "not a global unicast"},
		{name: "address keeps host bits", mutate: func(c *Config) { c.Addresses = pfx("100.96.0.2/12") }},
		{name: "invalid route", mutate: func(c *Config) { c.Routes = []netip.Prefix{{}} }, want: "not a valid prefix"},
		{name: "route host bits", mutate: func(c *Config) { c.Routes = pfx("192.168.0.1/24") }, want: "did you mean 192.168.0.0/24?"},
		{name: "mapped route", mutate: func(c *Config) { c.Routes = pfx("::ffff:10.0.0.0/104") }, want: "IPv4-mapped"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok()
			tt.mutate(&c)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.want)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("Validate() = %v, which does not wrap ErrInvalidConfig", err)
			}
		})
	}
}

func TestDesired(t *testing.T) {
	tests := []struct {
		name string
		cfg  *Config
		want state
	}{
		{name: "nil asks for nothing"},
		{
			name: "sorted, deduplicated, kernel metrics",
			cfg: &Config{
				Interface: "warren0",
				Addresses: pfx("fd7a::2/128", "100.96.0.2/32", "fd7a::2/128"),
				Routes:    pfx("2001:db8::/32", "10.0.0.0/8", "10.0.0.0/8", "192.168.0.0/24"),
			},
			want: state{
				Addrs:  pfx("100.96.0.2/32", "fd7a::2/128"),
				Routes: rts("10.0.0.0/8@0", "192.168.0.0/24@0", "2001:db8::/32@1024"),
			},
		},
		{
			name: "explicit metric applies to both families",
			cfg:  &Config{Interface: "warren0", Routes: pfx("2001:db8::/32", "10.0.0.0/8"), Metric: 50},
			want: state{Routes: rts("10.0.0.0/8@50", "2001:db8::/32@50")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, desired(tt.cfg), cmpState); diff != "" {
				t.Errorf("desired (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDiffPlan(t *testing.T) {
	tests := []struct {
		name       string
		have, want state
		plan       plan
	}{
		{name: "nothing"},
		{
			name: "identical is empty",
			have: state{Addrs: pfx("100.96.0.2/32"), Routes: rts("10.0.0.0/8@0", "2001:db8::/32@1024")},
			want: state{Addrs: pfx("100.96.0.2/32"), Routes: rts("10.0.0.0/8@0", "2001:db8::/32@1024")},
		},
		{
			name: "from nothing",
			want: state{Addrs: pfx("100.96.0.2/32"), Routes: rts("10.0.0.0/8@0")},
			plan: plan{AddAddrs: pfx("100.96.0.2/32"), AddRoutes: rts("10.0.0.0/8@0")},
		},
		{
			name: "to nothing",
			have: state{Addrs: pfx("100.96.0.2/32", "fd7a::2/128"), Routes: rts("10.0.0.0/8@0", "2001:db8::/32@1024")},
			plan: plan{DelAddrs: pfx("100.96.0.2/32", "fd7a::2/128"), DelRoutes: rts("10.0.0.0/8@0", "2001:db8::/32@1024")},
		},
		{
			name: "kept routes are not touched",
			have: state{Routes: rts("10.0.0.0/8@0", "172.16.0.0/12@0", "2001:db8::/32@1024")},
			want: state{Routes: rts("10.0.0.0/8@0", "192.168.0.0/24@0", "2001:db8::/32@1024")},
			plan: plan{AddRoutes: rts("192.168.0.0/24@0"), DelRoutes: rts("172.16.0.0/12@0")},
		},
		{
			name: "metric change re-adds at the new metric first",
			have: state{Routes: rts("10.0.0.0/8@0", "2001:db8::/32@1024")},
			want: state{Routes: rts("10.0.0.0/8@50", "2001:db8::/32@50")},
			plan: plan{AddRoutes: rts("10.0.0.0/8@50", "2001:db8::/32@50"), DelRoutes: rts("10.0.0.0/8@0", "2001:db8::/32@1024")},
		},
		{
			name: "duplicate metrics installed",
			have: state{Routes: rts("10.0.0.0/8@0", "10.0.0.0/8@7")},
			want: state{Routes: rts("10.0.0.0/8@0")},
			plan: plan{DelRoutes: rts("10.0.0.0/8@7")},
		},
		{
			name: "ipv4 address changes prefix length: add first",
			have: state{Addrs: pfx("100.96.0.2/32")},
			want: state{Addrs: pfx("100.96.0.2/12")},
			plan: plan{AddAddrs: pfx("100.96.0.2/12"), DelAddrs: pfx("100.96.0.2/32")},
		},
		{
			name: "ipv6 address changes prefix length: delete first",
			have: state{Addrs: pfx("fd7a::2/128", "fd7a::9/128")},
			want: state{Addrs: pfx("fd7a::2/64", "fd7a::3/128")},
			plan: plan{
				DelAddrsFirst: pfx("fd7a::2/128"),
				AddAddrs:      pfx("fd7a::2/64", "fd7a::3/128"),
				DelAddrs:      pfx("fd7a::9/128"),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := diff(tt.have, tt.want)
			if d := cmp.Diff(tt.plan, got, cmpState); d != "" {
				t.Errorf("diff (-want +got):\n%s", d)
			}
			if got.empty() != cmp.Equal(tt.plan, plan{}, cmpState) {
				t.Errorf("empty() = %v for %+v", got.empty(), got)
			}
		})
	}
}

// fakeNet is an in-memory netState that records every call and fails the
// ones listed in fail.
type fakeNet struct {
	st      state
	calls   []string
	fail    map[string]error // call → error
	readErr error
	// onDel, when set, runs after a successful delAddr: the place to
	// simulate the kernel taking more than asked.
	onDel func(f *fakeNet, p netip.Prefix)
}

func (f *fakeNet) do(call string) error {
	f.calls = append(f.calls, call)
	return f.fail[call]
}

func (f *fakeNet) read() (state, error) {
	f.calls = append(f.calls, "read")
	return state{Addrs: slices.Clone(f.st.Addrs), Routes: slices.Clone(f.st.Routes)}, f.readErr
}

func (f *fakeNet) addAddr(p netip.Prefix) error {
	if err := f.do("add addr " + p.String()); err != nil {
		return err
	}
	f.st.Addrs = append(f.st.Addrs, p)
	return nil
}

func (f *fakeNet) delAddr(p netip.Prefix) error {
	if err := f.do("del addr " + p.String()); err != nil {
		return err
	}
	f.st.Addrs = slices.DeleteFunc(f.st.Addrs, func(a netip.Prefix) bool { return a == p })
	if f.onDel != nil {
		f.onDel(f, p)
	}
	return nil
}

func (f *fakeNet) addRoute(r route) error {
	if err := f.do("add route " + r.String()); err != nil {
		return err
	}
	f.st.Routes = append(f.st.Routes, r)
	return nil
}

func (f *fakeNet) delRoute(r route) error {
	if err := f.do("del route " + r.String()); err != nil {
		return err
	}
	f.st.Routes = slices.DeleteFunc(f.st.Routes, func(x route) bool { return x == r })
	return nil
}

func TestReconcile(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	errBoom := errors.New("boom")
	tests := []struct {
		name      string
		net       *fakeNet
		want      state
		wantCalls []string
		wantErrs  []string // substrings, one per joined error
		wantState *state   // nil: want
	}{
		{
			name:      "identical only reads",
			net:       &fakeNet{st: state{Addrs: pfx("100.96.0.2/32"), Routes: rts("10.0.0.0/8@0")}},
			want:      state{Addrs: pfx("100.96.0.2/32"), Routes: rts("10.0.0.0/8@0")},
			wantCalls: []string{"read"},
		},
		{
			name: "adds before it deletes, then checks",
			net: &fakeNet{st: state{
				Addrs:  pfx("100.96.0.2/32"),
				Routes: rts("10.0.0.0/8@0", "172.16.0.0/12@0", "2001:db8::/32@1024"),
			}},
			want: state{
				Addrs:  pfx("100.96.0.3/32"),
				Routes: rts("10.0.0.0/8@0", "192.168.0.0/24@0", "2001:db8::/32@1024", "fd00::/8@1024"),
			},
			wantCalls: []string{
				"read",
				"add addr 100.96.0.3/32",
				"add route 192.168.0.0/24 metric 0",
				"add route fd00::/8 metric 1024",
				"del route 172.16.0.0/12 metric 0",
				"del addr 100.96.0.2/32",
				"read", // deletions happened: check nothing else went
			},
		},
		{
			name:      "only additions need no second read",
			net:       &fakeNet{},
			want:      state{Routes: rts("10.0.0.0/8@0")},
			wantCalls: []string{"read", "add route 10.0.0.0/8 metric 0"},
		},
		{
			name: "keeps going past failures and joins them",
			net: &fakeNet{
				st: state{Routes: rts("10.0.0.0/8@0", "172.16.0.0/12@0")},
				fail: map[string]error{
					"add route 192.168.0.0/24 metric 0": errBoom,
					"del route 10.0.0.0/8 metric 0":     errBoom,
				},
			},
			want: state{Addrs: pfx("100.96.0.2/32"), Routes: rts("192.168.0.0/24@0", "198.51.100.0/24@0")},
			wantCalls: []string{
				"read",
				"add addr 100.96.0.2/32",
				"add route 192.168.0.0/24 metric 0",
				"add route 198.51.100.0/24 metric 0",
				"del route 10.0.0.0/8 metric 0",
				"del route 172.16.0.0/12 metric 0",
			},
			wantErrs:  []string{"boom", "boom"},
			wantState: &state{Addrs: pfx("100.96.0.2/32"), Routes: rts("10.0.0.0/8@0", "198.51.100.0/24@0")},
		},
		{
			name: "second pass restores what a delete took along",
			net: &fakeNet{
				st: state{Addrs: pfx("100.96.0.2/24")},
				// Like Linux without promote_secondaries: deleting the
				// primary takes the secondary in its subnet too.
				onDel: func(f *fakeNet, p netip.Prefix) {
					f.st.Addrs = slices.DeleteFunc(f.st.Addrs, func(a netip.Prefix) bool { return a.Masked() == p.Masked() })
				},
			},
			want: state{Addrs: pfx("100.96.0.3/24")},
			wantCalls: []string{
				"read",
				"add addr 100.96.0.3/24",
				"del addr 100.96.0.2/24",
				"read",
				"add addr 100.96.0.3/24",
			},
		},
		{
			name:      "read error stops",
			net:       &fakeNet{readErr: errBoom},
			want:      state{Routes: rts("10.0.0.0/8@0")},
			wantCalls: []string{"read"},
			wantErrs:  []string{"boom"},
			wantState: &state{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := reconcile(log, tt.net, tt.want)
			if d := cmp.Diff(tt.wantCalls, tt.net.calls); d != "" {
				t.Errorf("calls (-want +got):\n%s", d)
			}
			var got []string
			if err != nil {
				if j, ok := err.(interface{ Unwrap() []error }); ok {
					for _, e := range j.Unwrap() {
						got = append(got, e.Error())
					}
				} else {
					got = []string{err.Error()}
				}
			}
			if len(got) != len(tt.wantErrs) {
				t.Fatalf("reconcile error = %v, want %d errors %q", err, len(tt.wantErrs), tt.wantErrs)
			}
			for i := range got {
				if !strings.Contains(got[i], tt.wantErrs[i]) {
					t.Errorf("error %d = %q, want it to contain %q", i, got[i], tt.wantErrs[i])
				}
			}
			if len(tt.wantErrs) > 0 && !errors.Is(err, errBoom) {
				t.Errorf("reconcile error %v does not wrap the failure", err)
			}
			wantState := tt.want
			if tt.wantState != nil {
				wantState = *tt.wantState
			}
			gotState := tt.net.st
			slices.SortFunc(gotState.Routes, compareRoutes)
			if d := cmp.Diff(wantState, gotState, cmpState, cmpopts.SortSlices(func(a, b netip.Prefix) bool { return a.String() < b.String() })); d != "" {
				t.Errorf("final state (-want +got):\n%s", d)
			}
		})
	}
}

// TestReconcileConverges checks, over random installed and wanted states,
// that one reconcile reaches the wanted state, a second changes nothing, and
// no route that is both installed and wanted is ever deleted.
func TestReconcileConverges(t *testing.T) {
	universe := rts(
		"10.0.0.0/8@0", "10.0.0.0/8@50", "10.1.0.0/16@0", "192.168.0.0/24@0", "198.51.100.0/24@0",
		"2001:db8::/32@1024", "2001:db8::/32@50", "fd00::/8@1024", "2001:db8:1::/48@1024",
	)
	addrs := pfx("100.96.0.2/32", "100.96.0.3/32", "100.96.0.2/12", "fd7a::2/128", "fd7a::2/64", "fd7a::3/128")
	log := slog.New(slog.DiscardHandler)
	// Subsets by bitmask keep the test deterministic and exhaustive enough.
	pick := func(mask uint, rs []route, as []netip.Prefix) state {
		var s state
		for i, r := range rs {
			if mask&(1<<i) != 0 {
				s.Routes = append(s.Routes, r)
			}
		}
		for i, a := range as {
			if mask&(1<<(len(rs)+i)) != 0 {
				s.Addrs = append(s.Addrs, a)
			}
		}
		return s
	}
	n := uint(len(universe) + len(addrs))
	for i := range 300 {
		// A cheap deterministic spread over the 2^n subsets.
		hm := (uint(i) * 2654435761) % (1 << n)
		wm := (uint(i)*40503 + 977) % (1 << n)
		have, want := pick(hm, universe, addrs), pick(wm, universe, addrs)
		// The kernel would not hold one IPv6 address at two lengths.
		have.Addrs = dedupByAddr6(have.Addrs)
		want.Addrs = dedupByAddr6(want.Addrs)
		f := &fakeNet{st: have}
		if err := reconcile(log, f, want); err != nil {
			t.Fatalf("reconcile(%v → %v) = %v", have, want, err)
		}
		for _, c := range f.calls {
			for _, r := range want.Routes {
				if slices.Contains(have.Routes, r) && c == "del route "+r.String() {
					t.Fatalf("reconcile(%v → %v) deleted kept route %v; calls %q", have, want, r, f.calls)
				}
			}
		}
		got := f.st
		slices.SortFunc(got.Routes, compareRoutes)
		slices.SortFunc(want.Routes, compareRoutes)
		sortP := cmpopts.SortSlices(func(a, b netip.Prefix) bool { return a.String() < b.String() })
		if d := cmp.Diff(want, got, cmpState, sortP); d != "" {
			t.Fatalf("reconcile(%v → %v) final state (-want +got):\n%s", have, want, d)
		}
		f.calls = nil
		if err := reconcile(log, f, want); err != nil || !slices.Equal(f.calls, []string{"read"}) {
			t.Fatalf("second reconcile = %v with calls %q, want only a read", err, f.calls)
		}
	}
}

func dedupByAddr6(ps []netip.Prefix) []netip.Prefix {
	seen := make(map[netip.Addr]bool)
	var out []netip.Prefix
	for _, p := range ps {
		if p.Addr().Is6() && seen[p.Addr()] {
			continue
		}
		seen[p.Addr()] = true
		out = append(out, p)
	}
	return out
}
