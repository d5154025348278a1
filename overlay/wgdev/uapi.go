package wgdev

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/warrennet/warren/overlay/wire"
)

// This file speaks wireguard-go's configuration protocol
// (https://www.wireguard.com/xplatform/#configuration-protocol): render
// builds the text for IpcSet, parseGet reads the text of IpcGet. Both are
// pure.

// changes summarizes what a rendering does, for the log.
type changes struct {
	full                    bool // the device is reconfigured from scratch
	added, updated, removed int  // peers
}

// render returns the UAPI "set" text that takes a device configured with
// old to want, and a summary of it. It returns "" when nothing changes.
//
// old nil means the device's configuration is unknown (it is fresh, or an
// apply failed and its state could not be read back). Then, and when the
// private key changes, the whole configuration is rendered after
// replace_peers=true. Otherwise only differences are: new peers are added,
// peers whose configuration changed are updated in place (their AllowedIPs
// with replace_allowed_ips, their endpoint only when it changed, their
// keepalive), gone peers are removed, and a peer whose configuration did not
// change is not mentioned, so it keeps its session. Additions and updates
// come before removals.
//
// want must be valid; neither argument is modified.
func render(old *Config, want Config) (string, changes) {
	want = normalize(want)
	var prev Config // old, normalized; zero if nil
	if old != nil {
		prev = normalize(*old)
	}
	var b strings.Builder
	var ch changes
	if old == nil || prev.PrivateKey != want.PrivateKey {
		ch.full = true
		fmt.Fprintf(&b, "private_key=%s\n", want.PrivateKey.Hex())
		renderPort(&b, prev.ListenPort, want.ListenPort)
		b.WriteString("replace_peers=true\n")
		for _, p := range want.Peers {
			renderPeer(&b, p)
			ch.added++
		}
		return b.String(), ch
	}

	renderPort(&b, prev.ListenPort, want.ListenPort)
	before := make(map[wire.Key]Peer, len(prev.Peers))
	for _, p := range prev.Peers {
		before[p.PublicKey] = p
	}
	for _, p := range want.Peers {
		o, ok := before[p.PublicKey]
		switch {
		case !ok:
			renderPeer(&b, p)
			ch.added++
		case !samePeer(o, p):
			renderUpdate(&b, o, p)
			ch.updated++
		}
		delete(before, p.PublicKey)
	}
	for _, o := range prev.Peers { // sorted, unlike the map
		if _, gone := before[o.PublicKey]; gone {
			fmt.Fprintf(&b, "public_key=%s\nremove=true\n", o.PublicKey.Hex())
			ch.removed++
		}
	}
	return b.String(), ch
}

// renderPort writes the listen port if it changes. 0 means any: the port
// the device has already is as good as any.
func renderPort(b *strings.Builder, old, want uint16) {
	if want != 0 && want != old {
		fmt.Fprintf(b, "listen_port=%d\n", want)
	}
}

// renderPeer writes the whole configuration of a peer the device does not
// have.
func renderPeer(b *strings.Builder, p Peer) {
	fmt.Fprintf(b, "public_key=%s\n", p.PublicKey.Hex())
	if p.Endpoint != "" {
		fmt.Fprintf(b, "endpoint=%s\n", p.Endpoint)
	}
	if p.PersistentKeepalive != 0 {
		fmt.Fprintf(b, "persistent_keepalive_interval=%d\n", keepaliveSeconds(p.PersistentKeepalive))
	}
	for _, pfx := range p.AllowedIPs {
		fmt.Fprintf(b, "allowed_ip=%s\n", pfx)
	}
}

// renderUpdate writes what changed from o to p, two configurations of the
// same peer.
func renderUpdate(b *strings.Builder, o, p Peer) {
	fmt.Fprintf(b, "public_key=%s\n", p.PublicKey.Hex())
	if p.Endpoint != o.Endpoint && p.Endpoint != "" {
		fmt.Fprintf(b, "endpoint=%s\n", p.Endpoint)
	}
	if p.PersistentKeepalive != o.PersistentKeepalive {
		fmt.Fprintf(b, "persistent_keepalive_interval=%d\n", keepaliveSeconds(p.PersistentKeepalive))
	}
	if !slices.Equal(p.AllowedIPs, o.AllowedIPs) {
		b.WriteString("replace_allowed_ips=true\n")
		for _, pfx := range p.AllowedIPs {
			fmt.Fprintf(b, "allowed_ip=%s\n", pfx)
		}
	}
}

// samePeer reports whether applying p over o would change nothing. Both
// are normalized. An endpoint changed to "" changes nothing: UAPI cannot
// clear one.
func samePeer(o, p Peer) bool {
	return (p.Endpoint == o.Endpoint || p.Endpoint == "") &&
		p.PersistentKeepalive == o.PersistentKeepalive &&
		slices.Equal(p.AllowedIPs, o.AllowedIPs)
}

func keepaliveSeconds(d time.Duration) int64 { return int64(d / time.Second) }

// PeerStats is what the device reports about one peer.
type PeerStats struct {
	PublicKey wire.Key

	// Endpoint is where the device currently sends to the peer, as the
	// Bind prints it; "" if it has none. wireguard-go updates it from
	// authenticated packets, so it may differ from the configured one.
	Endpoint string

	// LastHandshake is when the last handshake completed; zero if never.
	LastHandshake time.Time

	RxBytes, TxBytes uint64

	AllowedIPs          []netip.Prefix
	PersistentKeepalive time.Duration
}

// deviceState is what IpcGet reports. It holds the private key: never log
// it.
type deviceState struct {
	privateKey wire.Key
	listenPort uint16
	peers      []PeerStats
}

// errGet is wrapped by every error of parseGet.
var errGet = errors.New("parsing wireguard device state")

// parseGet parses the text of IpcGet. Unknown keys are ignored, so a newer
// wireguard-go can add some; a line that is not key=value, a malformed
// value of a known key, a peer listed twice or a non-zero errno are errors.
// A blank line ends the text. Errors name the line and the key, never the
// value (it may be the private key).
func parseGet(text string) (deviceState, error) {
	var st deviceState
	var peer *PeerStats
	var sec, nsec int64
	seen := map[wire.Key]bool{}
	finish := func() {
		if peer == nil {
			return
		}
		if sec != 0 || nsec != 0 {
			peer.LastHandshake = time.Unix(sec, nsec)
		}
		st.peers = append(st.peers, *peer)
		peer, sec, nsec = nil, 0, 0
	}
	for n, line := range strings.Split(text, "\n") {
		n++ // lines count from 1
		if line == "" {
			break
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			return deviceState{}, fmt.Errorf("%w: line %d is not key=value", errGet, n)
		}
		bad := func(err error) (deviceState, error) {
			return deviceState{}, fmt.Errorf("%w: line %d: %s: %w", errGet, n, key, err)
		}
		if key == "errno" {
			if value != "0" {
				return deviceState{}, fmt.Errorf("%w: errno=%s", errGet, value)
			}
			continue
		}
		if key == "public_key" {
			finish()
			k, err := parseHexKey(value)
			if err != nil {
				return bad(err)
			}
			if seen[k] {
				return bad(errors.New("peer listed twice"))
			}
			seen[k] = true
			peer = &PeerStats{PublicKey: k}
			continue
		}
		if peer == nil { // device-wide keys come before the first peer
			switch key {
			case "private_key":
				k, err := parseHexKey(value)
				if err != nil {
					return bad(errors.New("not 64 hex digits"))
				}
				st.privateKey = k
			case "listen_port":
				p, err := strconv.ParseUint(value, 10, 16)
				if err != nil {
					return bad(errors.New("not a port"))
				}
				st.listenPort = uint16(p)
			}
			continue
		}
		var err error
		switch key {
		case "endpoint":
			peer.Endpoint = value
		case "last_handshake_time_sec":
			sec, err = strconv.ParseInt(value, 10, 64)
			if err == nil && sec < 0 {
				err = errors.New("negative")
			}
		case "last_handshake_time_nsec":
			nsec, err = strconv.ParseInt(value, 10, 64)
			if err == nil && (nsec < 0 || nsec >= int64(time.Second)) {
				err = errors.New("out of range")
			}
		case "rx_bytes":
			peer.RxBytes, err = strconv.ParseUint(value, 10, 64)
		case "tx_bytes":
			peer.TxBytes, err = strconv.ParseUint(value, 10, 64)
		case "persistent_keepalive_interval":
			var s uint64
			s, err = strconv.ParseUint(value, 10, 16)
			peer.PersistentKeepalive = time.Duration(s) * time.Second
		case "allowed_ip":
			var p netip.Prefix
			p, err = netip.ParsePrefix(value)
			peer.AllowedIPs = append(peer.AllowedIPs, p)
		}
		if err != nil {
			return bad(err)
		}
	}
	finish()
	return st, nil
}

func parseHexKey(s string) (wire.Key, error) {
	var k wire.Key
	if len(s) != hex.EncodedLen(len(k)) {
		return k, errors.New("not 64 hex digits")
	}
	if _, err := hex.Decode(k[:], []byte(s)); err != nil {
		return wire.Key{}, errors.New("not 64 hex digits")
	}
	return k, nil
}

// config returns the configuration st shows, for diffing the next apply
// against when an apply failed part way.
func (st deviceState) config() Config {
	c := Config{PrivateKey: st.privateKey, ListenPort: st.listenPort}
	for _, p := range st.peers {
		c.Peers = append(c.Peers, Peer{
			PublicKey:           p.PublicKey,
			AllowedIPs:          p.AllowedIPs,
			Endpoint:            p.Endpoint,
			PersistentKeepalive: p.PersistentKeepalive,
		})
	}
	return normalize(c)
}

// sortStats orders stats by public key.
func sortStats(s []PeerStats) {
	slices.SortFunc(s, func(x, y PeerStats) int { return bytes.Compare(x.PublicKey[:], y.PublicKey[:]) })
}
