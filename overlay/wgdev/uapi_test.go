package wgdev

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.zx2c4.com/wireguard/conn/bindtest"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/tun/tuntest"

	"github.com/warrennet/warren/overlay/wire"
)

var update = flag.Bool("update", false, "rewrite testdata/*.uapi from the current rendering")

// prefixCmp compares netip values by ==, as go-cmp cannot see inside them.
var prefixCmp = cmp.Options{
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
}

// goldenBase is the configuration the golden cases start from: a client
// with two connectors, one reached through the relay.
func goldenBase() Config {
	b, c := testKey(0xb0), testKey(0xc0)
	return Config{
		PrivateKey: testKey(0x11),
		Peers: []Peer{
			{
				PublicKey:           c,
				AllowedIPs:          []netip.Prefix{netip.MustParsePrefix("100.96.0.3/32")},
				Endpoint:            "198.51.100.20:51820",
				PersistentKeepalive: 25 * time.Second,
			},
			{
				PublicKey:           b,
				AllowedIPs:          []netip.Prefix{netip.MustParsePrefix("192.168.0.0/24"), netip.MustParsePrefix("100.96.0.2/32")},
				Endpoint:            "relay:" + b.String(),
				PersistentKeepalive: 25 * time.Second,
			},
		},
	}
}

// edit returns a copy of goldenBase changed by f.
func edit(f func(c *Config)) Config {
	c := normalize(goldenBase())
	f(&c)
	return c
}

// peerIndex returns the index of the peer with key k in c.
func peerIndex(c *Config, k wire.Key) int {
	return slices.IndexFunc(c.Peers, func(p Peer) bool { return p.PublicKey == k })
}

func TestRenderGolden(t *testing.T) {
	base := goldenBase()
	b, c, d := testKey(0xb0), testKey(0xc0), testKey(0xd0)
	cases := []struct {
		name string
		old  *Config
		want Config
	}{
		{name: "first", old: nil, want: base},
		{name: "first_listen_port", old: nil, want: edit(func(c *Config) { c.ListenPort = 51820 })},
		{name: "add_peer", old: &base, want: edit(func(cfg *Config) {
			cfg.Peers = append(cfg.Peers, Peer{PublicKey: d, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("100.96.0.4/32"), netip.MustParsePrefix("10.20.0.0/16")}})
		})},
		{name: "remove_peer", old: &base, want: edit(func(cfg *Config) {
			cfg.Peers = slices.Delete(cfg.Peers, peerIndex(cfg, c), peerIndex(cfg, c)+1)
		})},
		{name: "change_allowed_ips", old: &base, want: edit(func(cfg *Config) {
			i := peerIndex(cfg, b)
			cfg.Peers[i].AllowedIPs = append(cfg.Peers[i].AllowedIPs, netip.MustParsePrefix("192.168.1.0/24"))
		})},
		{name: "move_prefix", old: &base, want: edit(func(cfg *Config) {
			// 192.168.0.0/24 moves from b to c.
			cfg.Peers[peerIndex(cfg, b)].AllowedIPs = []netip.Prefix{netip.MustParsePrefix("100.96.0.2/32")}
			i := peerIndex(cfg, c)
			cfg.Peers[i].AllowedIPs = append(cfg.Peers[i].AllowedIPs, netip.MustParsePrefix("192.168.0.0/24"))
		})},
		{name: "change_endpoint_keepalive", old: &base, want: edit(func(cfg *Config) {
			cfg.Peers[peerIndex(cfg, c)].Endpoint = "relay:" + c.String()
			cfg.Peers[peerIndex(cfg, b)].PersistentKeepalive = 0
		})},
		{name: "listen_port", old: &base, want: edit(func(c *Config) { c.ListenPort = 51820 })},
		{name: "private_key", old: &base, want: edit(func(c *Config) { c.PrivateKey = testKey(0x22) })},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.want.Validate(); err != nil {
				t.Fatal(err)
			}
			got, _ := render(tc.old, tc.want)
			path := filepath.Join("testdata", tc.name+".uapi")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("render() mismatch (-want +got):\n%s", cmp.Diff(string(want), got))
			}
			if again, _ := render(&tc.want, tc.want); again != "" {
				t.Errorf("render(want, want) = %q, want nothing", again)
			}
		})
	}
}

// TestRenderNothing lists changes that must render no UAPI at all.
func TestRenderNothing(t *testing.T) {
	base := goldenBase()
	cases := []struct {
		name string
		want Config
	}{
		{name: "unchanged", want: base},
		{name: "peers reordered", want: func() Config {
			c := normalize(base)
			slices.Reverse(c.Peers)
			return c
		}()},
		{name: "allowed IPs reordered and repeated", want: edit(func(c *Config) {
			for i := range c.Peers {
				ips := c.Peers[i].AllowedIPs
				c.Peers[i].AllowedIPs = append(slices.Clone(ips), ips...)
				slices.Reverse(c.Peers[i].AllowedIPs)
			}
		})},
		{name: "endpoint cleared (UAPI cannot)", want: edit(func(c *Config) { c.Peers[0].Endpoint = "" })},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ch := render(&base, tc.want)
			if got != "" {
				t.Errorf("render() = %q, want nothing", got)
			}
			if ch != (changes{}) {
				t.Errorf("render() changes = %+v, want none", ch)
			}
		})
	}
	withPort := edit(func(c *Config) { c.ListenPort = 51820 })
	if got, _ := render(&withPort, base); got != "" {
		t.Errorf("render(port 51820 → any) = %q, want nothing (the current port is as good as any)", got)
	}
}

// randomConfig draws a valid configuration from small pools of keys,
// prefixes and endpoints, so that two draws share much and differ a bit.
func randomConfig(r *rand.Rand, privs, peers []wire.Key, prefixes []netip.Prefix) Config {
	endpoints := []string{"", "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"}
	c := Config{PrivateKey: privs[r.IntN(len(privs))]}
	if r.IntN(4) == 0 {
		c.ListenPort = uint16(51820 + r.IntN(2))
	}
	for _, k := range peers {
		if r.IntN(3) == 0 {
			continue
		}
		c.Peers = append(c.Peers, Peer{
			PublicKey:           k,
			Endpoint:            endpoints[r.IntN(len(endpoints))],
			PersistentKeepalive: time.Duration(r.IntN(2)*25) * time.Second,
		})
	}
	if len(c.Peers) > 0 {
		for _, p := range prefixes {
			if i := r.IntN(len(c.Peers) + 1); i < len(c.Peers) {
				c.Peers[i].AllowedIPs = append(c.Peers[i].AllowedIPs, p)
			}
		}
	}
	return c
}

// TestRenderOnDevice applies random pairs of configurations to a real
// wireguard-go device (down, so nothing is sent): render(nil, old) then
// render(old, want) must leave the device holding exactly want, and the
// diff must not mention a peer whose configuration did not change.
func TestRenderOnDevice(t *testing.T) {
	binds := bindtest.NewChannelBinds()
	dev := device.NewDevice(newDownTUN(), binds[0], newLogger(testLogger(t)))
	t.Cleanup(func() {
		dev.Close()
		binds[1].Close()
		checkNoLeaks(t)
	})

	r := rand.New(rand.NewPCG(1, 2))
	privs := []wire.Key{testKey(0x11), testKey(0x22)}
	var peers []wire.Key
	for i := range 6 {
		peers = append(peers, testKey(byte(0xa0+i)))
	}
	var prefixes []netip.Prefix
	for i := range 12 {
		prefixes = append(prefixes, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(i), 0}), 24))
	}
	for i := range 4 {
		prefixes = append(prefixes, netip.PrefixFrom(netip.AddrFrom16([16]byte{0xfd, 6: 0, 7: byte(i)}), 64))
	}
	prefixes = append(prefixes, netip.MustParsePrefix("100.96.0.0/12"))

	read := func() deviceState {
		t.Helper()
		text, err := dev.IpcGet()
		if err != nil {
			t.Fatal(err)
		}
		st, err := parseGet(text)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	ignorePort := func(c Config) Config { c.ListenPort = 0; return c }

	for i := range 200 {
		old := normalize(randomConfig(r, privs, peers, prefixes))
		want := normalize(randomConfig(r, privs, peers, prefixes))
		if err := old.Validate(); err != nil {
			t.Fatal(err)
		}
		if err := want.Validate(); err != nil {
			t.Fatal(err)
		}

		full, _ := render(nil, old)
		if err := dev.IpcSet(full); err != nil {
			t.Fatalf("#%d: IpcSet(render(nil, old)): %v\n%s", i, err, full)
		}
		if diff := cmp.Diff(ignorePort(old), ignorePort(read().config()), prefixCmp); diff != "" {
			t.Fatalf("#%d: after render(nil, old), device mismatch (-want +got):\n%s\n%s", i, diff, full)
		}

		text, ch := render(&old, want)
		if err := dev.IpcSet(text); err != nil {
			t.Fatalf("#%d: IpcSet(render(old, want)): %v\n%s", i, err, text)
		}
		st := read()
		if want.ListenPort != 0 && st.listenPort != want.ListenPort {
			t.Errorf("#%d: listen port %d, want %d", i, st.listenPort, want.ListenPort)
		}
		// The device keeps an endpoint that want clears, unless the peer
		// was created afresh.
		expect := ignorePort(want)
		for j, p := range expect.Peers {
			if k := peerIndex(&old, p.PublicKey); p.Endpoint == "" && k >= 0 && !ch.full {
				expect.Peers[j].Endpoint = old.Peers[k].Endpoint
			}
		}
		if diff := cmp.Diff(expect, ignorePort(st.config()), prefixCmp); diff != "" {
			t.Fatalf("#%d: after render(old, want), device mismatch (-want +got):\n%s\nold: %+v\ndiff:\n%s", i, diff, old, text)
		}

		if old.PrivateKey != want.PrivateKey {
			continue
		}
		for _, p := range want.Peers {
			if k := peerIndex(&old, p.PublicKey); k >= 0 && samePeer(old.Peers[k], p) && strings.Contains(text, p.PublicKey.Hex()) {
				t.Errorf("#%d: the diff mentions unchanged peer %v:\n%s", i, p.PublicKey, text)
			}
		}
	}
}

// downTUN is a ChannelTUN that never reports itself up, so a device over
// it stays down: its peers are configured but never started.
type downTUN struct {
	tun.Device
	events chan tun.Event
	once   sync.Once
}

func newDownTUN() *downTUN {
	return &downTUN{Device: tuntest.NewChannelTUN().TUN(), events: make(chan tun.Event)}
}

func (d *downTUN) Events() <-chan tun.Event { return d.events }

func (d *downTUN) Close() error {
	d.once.Do(func() { close(d.events) })
	return d.Device.Close()
}

func TestParseGet(t *testing.T) {
	text, err := os.ReadFile(filepath.Join("testdata", "get.uapi"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := parseGet(string(text))
	if err != nil {
		t.Fatal(err)
	}
	want := deviceState{
		privateKey: testKey(0x11),
		listenPort: 51820,
		peers: []PeerStats{
			{
				PublicKey:           testKey(0xb0),
				Endpoint:            "relay:sLCwsLCwsLCwsLCwsLCwsLCwsLCwsLCwsLCwsLCwsLA=",
				LastHandshake:       time.Unix(1767225600, 123456789),
				RxBytes:             1492,
				TxBytes:             2236,
				AllowedIPs:          []netip.Prefix{netip.MustParsePrefix("192.168.0.0/24"), netip.MustParsePrefix("100.96.0.2/32")},
				PersistentKeepalive: 25 * time.Second,
			},
			{
				PublicKey:  testKey(0xc0),
				AllowedIPs: []netip.Prefix{netip.MustParsePrefix("fd00::/64")},
			},
		},
	}
	if diff := cmp.Diff(want, got, prefixCmp, cmp.AllowUnexported(deviceState{})); diff != "" {
		t.Errorf("parseGet() mismatch (-want +got):\n%s", diff)
	}

	bad := []struct{ name, text, want string }{
		{"no equals sign", "private_key\n", "line 1 is not key=value"},
		{"short key", "public_key=abcd\n", "line 1: public_key"},
		{"bad private key", "private_key=" + strings.Repeat("zz", 32) + "\n", "line 1: private_key: not 64 hex digits"},
		{"bad port", "listen_port=70000\n", "listen_port"},
		{"bad counter", "public_key=" + testKey(1).Hex() + "\nrx_bytes=-1\n", "line 2: rx_bytes"},
		{"bad nsec", "public_key=" + testKey(1).Hex() + "\nlast_handshake_time_nsec=1000000000\n", "out of range"},
		{"bad prefix", "public_key=" + testKey(1).Hex() + "\nallowed_ip=10.0.0.0/33\n", "allowed_ip"},
		{"peer twice", "public_key=" + testKey(1).Hex() + "\npublic_key=" + testKey(1).Hex() + "\n", "line 2: public_key: peer listed twice"},
		{"errno", "errno=1\n\n", "errno=1"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseGet(tc.text)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("parseGet(%q) = %v, want an error containing %q", tc.text, err, tc.want)
			}
		})
	}

	secret := testKey(0x5e)
	_, err = parseGet("private_key=" + secret.Hex()[:62] + "xy\n")
	if err == nil || strings.Contains(err.Error(), secret.Hex()[:62]) {
		t.Errorf("parseGet(bad private key) = %v, want an error that does not repeat the key", err)
	}

	// Unknown keys, a blank line and what follows it are ignored.
	st, err := parseGet("fwmark=3\nfuture_device_key=1\npublic_key=" + testKey(1).Hex() + "\nfuture_peer_key=x\n\ngarbage\n")
	if err != nil || len(st.peers) != 1 {
		t.Errorf("parseGet(unknown keys) = %+v, %v, want one peer and no error", st, err)
	}
}

// formatGet renders st as IpcGet would: the inverse of parseGet.
func formatGet(st deviceState) string {
	var b strings.Builder
	if !st.privateKey.IsZero() {
		fmt.Fprintf(&b, "private_key=%s\n", st.privateKey.Hex())
	}
	if st.listenPort != 0 {
		fmt.Fprintf(&b, "listen_port=%d\n", st.listenPort)
	}
	for _, p := range st.peers {
		fmt.Fprintf(&b, "public_key=%s\npreshared_key=%s\nprotocol_version=1\n", p.PublicKey.Hex(), wire.Key{}.Hex())
		if p.Endpoint != "" {
			fmt.Fprintf(&b, "endpoint=%s\n", p.Endpoint)
		}
		var sec, nsec int64
		if !p.LastHandshake.IsZero() {
			sec, nsec = p.LastHandshake.Unix(), int64(p.LastHandshake.Nanosecond())
		}
		fmt.Fprintf(&b, "last_handshake_time_sec=%d\nlast_handshake_time_nsec=%d\n", sec, nsec)
		fmt.Fprintf(&b, "tx_bytes=%d\nrx_bytes=%d\n", p.TxBytes, p.RxBytes)
		fmt.Fprintf(&b, "persistent_keepalive_interval=%d\n", keepaliveSeconds(p.PersistentKeepalive))
		for _, a := range p.AllowedIPs {
			fmt.Fprintf(&b, "allowed_ip=%s\n", a)
		}
	}
	return b.String()
}

// FuzzParseStats checks that parseGet never panics on any text and that
// whatever it accepts survives formatting and parsing again unchanged.
func FuzzParseStats(f *testing.F) {
	if text, err := os.ReadFile(filepath.Join("testdata", "get.uapi")); err == nil {
		f.Add(string(text))
	}
	f.Add("")
	f.Add("errno=0\n\n")
	f.Add("listen_port=1\npublic_key=" + testKey(1).Hex() + "\nlast_handshake_time_sec=9223372036854775807\nlast_handshake_time_nsec=999999999\n")
	f.Add("public_key=" + testKey(1).Hex() + "\nendpoint=a=b\nallowed_ip=::ffff:1.2.3.4/128\nallowed_ip=1.2.3.4/8\n")
	f.Fuzz(func(t *testing.T, text string) {
		st, err := parseGet(text)
		if err != nil {
			return
		}
		// Endpoints with a newline cannot round-trip through a line
		// protocol; parseGet cannot produce them.
		again, err := parseGet(formatGet(st))
		if err != nil {
			t.Fatalf("parseGet(formatGet(%+v)): %v", st, err)
		}
		opts := cmp.Options{prefixCmp, cmp.AllowUnexported(deviceState{}), cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })}
		if diff := cmp.Diff(st, again, opts); diff != "" {
			t.Fatalf("round trip mismatch (-first +second):\n%s", diff)
		}
	})
}
