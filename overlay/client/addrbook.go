package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/warrennet/warren/overlay/atomicfile"
)

// The coordinator's and the relay's addresses are hard guards: they never
// enter the tunnel, or the tunnel would carry its own control and relay
// traffic. When the coordinator's URL names a host, its addresses come
// from a lookup, which can fail (a resolver that is down, a captive
// portal). A failed lookup must not drop the guard: the addrBook keeps
// the last addresses each host resolved to, in the state directory so that
// a restarted daemon has them too, and the engine keeps guarding those,
// says so in its log and in `warren status`, and retries.

// Timings of the lookups; variables so tests can shorten them.
var (
	// lookupTimeout bounds one lookup, so an unreachable resolver holds
	// up a netmap by that much at most.
	lookupTimeout = 5 * time.Second
	// addrRetry is how often a failed lookup is retried; addrRefresh how
	// often working ones are looked up again to follow a changed record.
	addrRetry   = 30 * time.Second
	addrRefresh = 10 * time.Minute
)

// resolvedFile holds the last addresses each guarded host resolved to.
const resolvedFile = "resolved.json"

// knownAddrs is a host's last successful lookup, as saved.
type knownAddrs struct {
	Addrs []netip.Addr `json:"addrs"`
	At    time.Time    `json:"resolved_at"`
}

// addrBook looks hosts up and remembers, per host, the last answer that
// worked. Safe for concurrent use.
type addrBook struct {
	path   string
	lookup func(context.Context, string) ([]netip.Addr, error)
	log    *slog.Logger

	mu    sync.Mutex // guards known and the file at path
	known map[string]knownAddrs
}

// newAddrBook loads the addresses saved in dir. A file it cannot read is
// logged and ignored: the next successful lookups write a new one.
func newAddrBook(dir string, lookup func(context.Context, string) ([]netip.Addr, error), log *slog.Logger) *addrBook {
	b := &addrBook{path: filepath.Join(dir, resolvedFile), lookup: lookup, log: log, known: map[string]knownAddrs{}}
	raw, err := os.ReadFile(b.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		log.Warn("reading the last resolved addresses", "err", err)
	default:
		if err := json.Unmarshal(raw, &b.known); err != nil {
			log.Warn("reading the last resolved addresses", "file", b.path, "err", err)
			b.known = map[string]knownAddrs{}
		}
	}
	return b
}

// defaultLookup resolves host with the system's resolver.
func defaultLookup(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// resolved is what a guard uses for one host.
type resolved struct {
	host string
	// addrs are the fresh answer or, when err is set, the last known one
	// (possibly none).
	addrs []netip.Addr
	// err is the lookup's failure.
	err error
	// at is when addrs were looked up; zero for an address literal.
	at time.Time
}

// resolve returns host's addresses: the literal itself, a fresh lookup
// (saved when it changed), or after a failed lookup the last known ones
// with the error.
func (b *addrBook) resolve(ctx context.Context, host string) resolved {
	if a, err := netip.ParseAddr(host); err == nil {
		return resolved{host: host, addrs: []netip.Addr{a.Unmap()}}
	}
	r := resolved{host: host}
	lctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	ips, err := b.lookup(lctx, host)
	cancel()
	var addrs []netip.Addr
	for _, ip := range ips {
		if ip.IsValid() {
			addrs = append(addrs, ip.Unmap())
		}
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	addrs = slices.Compact(addrs)
	if err == nil && len(addrs) == 0 {
		err = errors.New("no addresses")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err != nil {
		k := b.known[host]
		r.addrs, r.at, r.err = slices.Clone(k.Addrs), k.At, err
		return r
	}
	now := time.Now().UTC().Round(time.Second)
	r.addrs, r.at = addrs, now
	if slices.Equal(b.known[host].Addrs, addrs) {
		return r
	}
	b.known[host] = knownAddrs{Addrs: addrs, At: now}
	if raw, err := json.MarshalIndent(b.known, "", "\t"); err == nil {
		if err := atomicfile.WriteFile(b.path, append(raw, '\n'), 0o600); err != nil {
			b.log.Warn("saving the resolved addresses", "err", err)
		}
	}
	b.log.Info("resolved a guarded host", "host", host, "addresses", addrs)
	return r
}

// hardAddrs are the looked-up hard guards of one netmap: the
// coordinator's host and the relay's.
type hardAddrs struct {
	coord resolved
	// relay is set when the netmap names a relay; relayPort is its port.
	relay     *resolved
	relayPort uint16
	relayErr  error // an endpoint that does not parse
}

// resolveHard looks up the coordinator's host (from its URL) and the
// relay endpoint's, once each even when they are the same host.
func (b *addrBook) resolveHard(ctx context.Context, coordURL, relayEndpoint string) hardAddrs {
	var h hardAddrs
	if u, err := url.Parse(coordURL); err != nil || u.Hostname() == "" {
		h.coord = resolved{err: fmt.Errorf("coordinator URL %q names no host", coordURL)}
	} else {
		h.coord = b.resolve(ctx, u.Hostname())
	}
	if relayEndpoint == "" {
		return h
	}
	host, port, err := net.SplitHostPort(relayEndpoint)
	p, perr := strconv.ParseUint(port, 10, 16)
	if err != nil || perr != nil {
		h.relayErr = fmt.Errorf("relay endpoint %q is not HOST:PORT", relayEndpoint)
		return h
	}
	h.relayPort = uint16(p)
	if host == h.coord.host {
		r := h.coord
		h.relay = &r
	} else {
		r := b.resolve(ctx, host)
		h.relay = &r
	}
	return h
}

// relayAddr is the address the relay is reached at: the first one its
// host resolved to, now or last time.
func (h hardAddrs) relayAddr() (netip.AddrPort, error) {
	if h.relayErr != nil {
		return netip.AddrPort{}, h.relayErr
	}
	if h.relay == nil || len(h.relay.addrs) == 0 {
		err := errors.New("no address")
		if h.relay != nil && h.relay.err != nil {
			err = h.relay.err
		}
		host := ""
		if h.relay != nil {
			host = h.relay.host
		}
		return netip.AddrPort{}, fmt.Errorf("resolving relay %s: %w", host, err)
	}
	return netip.AddrPortFrom(h.relay.addrs[0], h.relayPort), nil
}

// failing reports whether a lookup failed.
func (h hardAddrs) failing() bool {
	return h.coord.err != nil || (h.relay != nil && h.relay.err != nil)
}

// key identifies what the guards were built from: the addresses and
// whether their lookups worked. The engine re-applies when it changes.
func (h hardAddrs) key() string {
	var sb strings.Builder
	for _, r := range []*resolved{&h.coord, h.relay} {
		if r != nil {
			fmt.Fprintf(&sb, "%s=%v ok=%t;", r.host, r.addrs, r.err == nil)
		}
	}
	return sb.String()
}

// warnings say, for status, which lookups failed and what is guarded
// instead.
func (h hardAddrs) warnings() []string {
	var out []string
	for _, g := range []struct {
		what string
		r    *resolved
	}{{"coordinator", &h.coord}, {"relay", h.relay}} {
		r := g.r
		if r == nil || r.err == nil || (g.what == "relay" && r.host == h.coord.host) {
			continue
		}
		if len(r.addrs) > 0 {
			out = append(out, fmt.Sprintf("looking up the %s's host %s failed (%v): its last known addresses %v (resolved %s) stay out of the tunnel; retrying every %v",
				g.what, r.host, r.err, r.addrs, r.at.Format(time.RFC3339), addrRetry))
		} else {
			out = append(out, fmt.Sprintf("looking up the %s's host %s failed (%v) and no earlier address is known: nothing keeps it out of the tunnel; retrying every %v",
				g.what, r.host, r.err, addrRetry))
		}
	}
	return out
}
