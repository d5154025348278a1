package wgdev

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestValidate(t *testing.T) {
	priv := testKey(0x11)
	b, c := testKey(0xb0), testKey(0xc0)
	pfx := netip.MustParsePrefix
	peer := func(k [32]byte, prefixes ...string) Peer {
		p := Peer{PublicKey: k}
		for _, s := range prefixes {
			p.AllowedIPs = append(p.AllowedIPs, pfx(s))
		}
		return p
	}
	cases := []struct {
		name string
		cfg  Config
		want []string // substrings of the error; nil: valid
	}{
		{name: "no peers", cfg: Config{PrivateKey: priv}},
		{
			name: "valid",
			cfg: Config{PrivateKey: priv, ListenPort: 51820, Peers: []Peer{
				{PublicKey: b, AllowedIPs: []netip.Prefix{pfx("100.96.0.2/32"), pfx("192.168.0.0/24")}, Endpoint: "relay:" + b.String(), PersistentKeepalive: 25 * time.Second},
				peer(c, "100.96.0.3/32", "192.168.1.0/24", "fd00::/64"),
			}},
		},
		{name: "one peer overlapping itself", cfg: Config{PrivateKey: priv, Peers: []Peer{peer(b, "10.0.0.0/8", "10.1.0.0/16", "10.1.0.0/16")}}},
		{name: "adjacent prefixes of two peers", cfg: Config{PrivateKey: priv, Peers: []Peer{peer(b, "10.0.0.0/25"), peer(c, "10.0.0.128/25")}}},
		{name: "same address, two families", cfg: Config{PrivateKey: priv, Peers: []Peer{peer(b, "0.0.0.0/0"), peer(c, "::/0")}}},
		{name: "zero private key", cfg: Config{}, want: []string{"private key is not set"}},
		{name: "zero public key", cfg: Config{PrivateKey: priv, Peers: []Peer{{}}}, want: []string{"peer 0: public key is not set"}},
		{
			name: "own key as a peer",
			cfg:  Config{PrivateKey: priv, Peers: []Peer{{PublicKey: priv.PublicKey()}}},
			want: []string{priv.PublicKey().String(), "own public key"},
		},
		{
			name: "duplicate peer keys",
			cfg:  Config{PrivateKey: priv, Peers: []Peer{peer(b, "10.0.0.1/32"), peer(c), peer(b, "10.0.0.2/32")}},
			want: []string{b.String(), "listed twice"},
		},
		{
			name: "same prefix on two peers",
			cfg:  Config{PrivateKey: priv, Peers: []Peer{peer(b, "192.168.0.0/24"), peer(c, "192.168.0.0/24")}},
			want: []string{b.String(), c.String(), "192.168.0.0/24", "overlaps"},
		},
		{
			name: "prefix inside another peer's",
			cfg:  Config{PrivateKey: priv, Peers: []Peer{peer(c, "100.96.0.3/32", "192.168.0.128/25"), peer(b, "100.96.0.2/32", "192.168.0.0/24")}},
			want: []string{b.String(), c.String(), "192.168.0.0/24", "192.168.0.128/25", "overlaps"},
		},
		{
			name: "default route overlaps everything",
			cfg:  Config{PrivateKey: priv, Peers: []Peer{peer(b, "10.0.0.0/8"), peer(c, "0.0.0.0/0")}},
			want: []string{b.String(), c.String(), "overlaps"},
		},
		{
			name: "IPv6 overlap",
			cfg:  Config{PrivateKey: priv, Peers: []Peer{peer(b, "fd00::/64"), peer(c, "fd00::1/128")}},
			want: []string{b.String(), c.String(), "overlaps"},
		},
		{
			name: "non-canonical prefix",
			cfg:  Config{PrivateKey: priv, Peers: []Peer{peer(b, "192.168.0.1/24")}},
			want: []string{b.String(), "192.168.0.1/24", "not canonical", "192.168.0.0/24"},
		},
		{
			name: "IPv4 in IPv6 form",
			cfg:  Config{PrivateKey: priv, Peers: []Peer{peer(b, "::ffff:10.0.0.1/128")}},
			want: []string{b.String(), "IPv4 in IPv6 form"},
		},
		{
			name: "invalid prefix",
			cfg:  Config{PrivateKey: priv, Peers: []Peer{{PublicKey: b, AllowedIPs: []netip.Prefix{{}}}}},
			want: []string{b.String(), "not a valid prefix"},
		},
		{
			name: "newline in endpoint",
			cfg:  Config{PrivateKey: priv, Peers: []Peer{{PublicKey: b, Endpoint: "198.51.100.20:51820\nremove=true"}}},
			want: []string{b.String(), "control character"},
		},
		{
			name: "fractional keepalive",
			cfg:  Config{PrivateKey: priv, Peers: []Peer{{PublicKey: b, PersistentKeepalive: 1500 * time.Millisecond}}},
			want: []string{"whole number of seconds"},
		},
		{
			name: "keepalive too long",
			cfg:  Config{PrivateKey: priv, Peers: []Peer{{PublicKey: b, PersistentKeepalive: 65536 * time.Second}}},
			want: []string{"outside"},
		},
		{
			name: "negative keepalive",
			cfg:  Config{PrivateKey: priv, Peers: []Peer{{PublicKey: b, PersistentKeepalive: -time.Second}}},
			want: []string{"outside"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error containing %q", tc.want)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("Validate() = %v, want it to wrap ErrInvalidConfig", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

// TestFirstOverlap compares firstOverlap with the quadratic definition.
func TestFirstOverlap(t *testing.T) {
	prefixes := []string{
		"0.0.0.0/0", "10.0.0.0/8", "10.0.0.0/24", "10.0.0.128/25", "10.0.1.0/24",
		"10.255.255.255/32", "11.0.0.0/8", "::/0", "fd00::/8", "fd00::/64", "fd00:0:0:1::/64",
	}
	// Every assignment of up to three prefixes to two peers.
	for i := range prefixes {
		for j := range prefixes {
			for k := range prefixes {
				for owners := range 8 {
					ps := []ownedPrefix{
						{netip.MustParsePrefix(prefixes[i]), owners & 1},
						{netip.MustParsePrefix(prefixes[j]), owners >> 1 & 1},
						{netip.MustParsePrefix(prefixes[k]), owners >> 2 & 1},
					}
					want := false
					for x := range ps {
						for y := range ps {
							if ps[x].peer != ps[y].peer && ps[x].prefix.Overlaps(ps[y].prefix) {
								want = true
							}
						}
					}
					a, b, got := firstOverlap(ps)
					if got != want {
						t.Fatalf("firstOverlap(%v) found = %v, want %v", ps, got, want)
					}
					if got && (a.peer == b.peer || !a.prefix.Overlaps(b.prefix)) {
						t.Fatalf("firstOverlap(%v) = %v, %v: not an overlap of two peers", ps, a, b)
					}
				}
			}
		}
	}
}

func TestNormalize(t *testing.T) {
	pfx := netip.MustParsePrefix
	in := Config{PrivateKey: testKey(0xff), Peers: []Peer{
		{PublicKey: testKey(0xc0), AllowedIPs: []netip.Prefix{pfx("10.0.1.0/24"), pfx("10.0.0.0/24"), pfx("10.0.1.0/24")}},
		{PublicKey: testKey(0xb0)},
	}}
	clamped := testKey(0xff)
	clamped[0], clamped[31] = 0xf8, 0x7f
	want := Config{PrivateKey: clamped, Peers: []Peer{
		{PublicKey: testKey(0xb0)},
		{PublicKey: testKey(0xc0), AllowedIPs: []netip.Prefix{pfx("10.0.0.0/24"), pfx("10.0.1.0/24")}},
	}}
	got := normalize(in)
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("normalize() mismatch (-want +got):\n%s", diff)
	}
	// The result does not alias the input.
	got.Peers[1].AllowedIPs[0] = pfx("1.0.0.0/8")
	if in.Peers[0].AllowedIPs[1] != pfx("10.0.0.0/24") {
		t.Errorf("normalize() aliases its input")
	}
}
