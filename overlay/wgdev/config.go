package wgdev

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"golang.zx2c4.com/wireguard/device"

	"github.com/warrennet/warren/overlay/wire"
)

// ErrInvalidConfig is wrapped by every error Config.Validate returns.
var ErrInvalidConfig = errors.New("invalid wireguard config")

// maxKeepalive is the longest persistent keepalive UAPI can express
// (persistent_keepalive_interval is a uint16 of seconds).
const maxKeepalive = 65535 * time.Second

// Peer is one WireGuard peer.
type Peer struct {
	PublicKey wire.Key

	// AllowedIPs are exactly the prefixes this peer owns: packets to them
	// are sent to this peer, and packets from it are accepted only with a
	// source inside them. For a connector, the prefixes it serves plus its
	// overlay /32. Each must be canonical (no host bits set, IPv4 not in
	// IPv6 form), and no prefix may overlap one of another peer. Order and
	// duplicates do not matter.
	AllowedIPs []netip.Prefix

	// Endpoint is where to send to the peer, as the device's conn.Bind
	// parses it (for example "relay:<base64 key>" or "198.51.100.20:51820");
	// "" sets none. UAPI cannot clear an endpoint, so changing an endpoint to
	// "" leaves the device's current one in place (wireguard-go also learns
	// endpoints from authenticated packets).
	Endpoint string

	// PersistentKeepalive is how often to send a keepalive when otherwise
	// idle; 0 disables. Whole seconds, at most 65535s.
	PersistentKeepalive time.Duration
}

// Config is the whole configuration of a device.
type Config struct {
	// PrivateKey is this device's key. Changing it reconfigures the device
	// fully: every peer is removed and added again, so every session is
	// renegotiated (as it must be: the identity changed).
	PrivateKey wire.Key

	// ListenPort is the port the Bind listens on; 0 means any. Setting it
	// rebinds; changing it back to 0 keeps the current port.
	ListenPort uint16

	// Peers in any order.
	Peers []Peer
}

// Validate reports whether c can be applied: keys set and distinct, no peer
// holding the device's own key, AllowedIPs canonical and each owned by
// exactly one peer, endpoints without control characters and keepalives
// in whole seconds that UAPI can express. The error wraps ErrInvalidConfig
// and names the peer (both peers, for an overlap).
func (c Config) Validate() error {
	if c.PrivateKey.IsZero() {
		return fmt.Errorf("%w: private key is not set", ErrInvalidConfig)
	}
	if len(c.Peers) > device.MaxPeers {
		return fmt.Errorf("%w: %d peers, at most %d", ErrInvalidConfig, len(c.Peers), device.MaxPeers)
	}
	self := c.PrivateKey.PublicKey()
	seen := make(map[wire.Key]bool, len(c.Peers))
	var owned []ownedPrefix
	for i, p := range c.Peers {
		if p.PublicKey.IsZero() {
			return fmt.Errorf("%w: peer %d: public key is not set", ErrInvalidConfig, i)
		}
		if p.PublicKey == self {
			return fmt.Errorf("%w: peer %v is this device's own public key", ErrInvalidConfig, p.PublicKey)
		}
		if seen[p.PublicKey] {
			return fmt.Errorf("%w: peer %v is listed twice", ErrInvalidConfig, p.PublicKey)
		}
		seen[p.PublicKey] = true
		if err := p.validate(); err != nil {
			return fmt.Errorf("%w: peer %v: %w", ErrInvalidConfig, p.PublicKey, err)
		}
		for _, pfx := range p.AllowedIPs {
			owned = append(owned, ownedPrefix{pfx, i})
		}
	}
	if a, b, ok := firstOverlap(owned); ok {
		return fmt.Errorf("%w: allowed IP %v of peer %v overlaps allowed IP %v of peer %v",
			ErrInvalidConfig, a.prefix, c.Peers[a.peer].PublicKey, b.prefix, c.Peers[b.peer].PublicKey)
	}
	return nil
}

// validate checks what concerns p alone.
func (p Peer) validate() error {
	for _, pfx := range p.AllowedIPs {
		switch {
		case !pfx.IsValid():
			return fmt.Errorf("allowed IP %v is not a valid prefix", pfx)
		case pfx.Addr().Is4In6():
			return fmt.Errorf("allowed IP %v is IPv4 in IPv6 form; write it as IPv4", pfx)
		case pfx != pfx.Masked():
			return fmt.Errorf("allowed IP %v is not canonical (want %v)", pfx, pfx.Masked())
		}
	}
	for _, r := range p.Endpoint {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("endpoint %q contains a control character", p.Endpoint)
		}
	}
	k := p.PersistentKeepalive
	switch {
	case k < 0 || k > maxKeepalive:
		return fmt.Errorf("persistent keepalive %v is outside [0, %v]", k, maxKeepalive)
	case k%time.Second != 0:
		return fmt.Errorf("persistent keepalive %v is not a whole number of seconds", k)
	}
	return nil
}

// ownedPrefix is an allowed IP and the index of the peer that owns it.
type ownedPrefix struct {
	prefix netip.Prefix
	peer   int
}

// firstOverlap finds two prefixes of different peers that overlap. Valid
// canonical prefixes overlap only when one contains the other, so after
// sorting by address and then length, every prefix that contains p is on a
// stack of nested prefixes that precede it. O(n log n + n·128).
func firstOverlap(ps []ownedPrefix) (a, b ownedPrefix, ok bool) {
	ps = slices.Clone(ps)
	slices.SortFunc(ps, func(x, y ownedPrefix) int { return x.prefix.Compare(y.prefix) })
	var stack []ownedPrefix // each entry contains the next
	for _, p := range ps {
		for len(stack) > 0 && !stack[len(stack)-1].prefix.Contains(p.prefix.Addr()) {
			stack = stack[:len(stack)-1]
		}
		for _, q := range stack {
			if q.peer != p.peer {
				return q, p, true
			}
		}
		stack = append(stack, p)
	}
	return a, b, false
}

// normalize returns a deep copy of c with the private key clamped, peers
// sorted by public key and each peer's AllowedIPs sorted and without
// duplicates, so that two configs that mean the same compare equal and
// render the same. wireguard-go clamps the private key it is given and
// reports it clamped; clamping does not change the public key.
func normalize(c Config) Config {
	out := Config{PrivateKey: clamp(c.PrivateKey), ListenPort: c.ListenPort, Peers: make([]Peer, len(c.Peers))}
	for i, p := range c.Peers {
		p.AllowedIPs = slices.Clone(p.AllowedIPs)
		slices.SortFunc(p.AllowedIPs, netip.Prefix.Compare)
		p.AllowedIPs = slices.Compact(p.AllowedIPs)
		out.Peers[i] = p
	}
	slices.SortFunc(out.Peers, func(x, y Peer) int { return bytes.Compare(x.PublicKey[:], y.PublicKey[:]) })
	return out
}

// clamp clamps a Curve25519 private key as RFC 7748 decodes scalars.
func clamp(k wire.Key) wire.Key {
	if k.IsZero() {
		return k // unset stays unset, as in wireguard-go
	}
	k[0] &= 248
	k[31] = k[31]&127 | 64
	return k
}
