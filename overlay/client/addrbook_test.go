package client

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// fakeDNS answers lookups from a table that tests change; a host missing
// from it fails as a resolver that is down would.
type fakeDNS struct {
	mu      sync.Mutex // guards the fields below
	answers map[string][]netip.Addr
	calls   map[string]int
}

func newFakeDNS() *fakeDNS {
	return &fakeDNS{answers: map[string][]netip.Addr{}, calls: map[string]int{}}
}

func (d *fakeDNS) set(host string, addrs ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if addrs == nil {
		delete(d.answers, host)
		return
	}
	var as []netip.Addr
	for _, a := range addrs {
		as = append(as, netip.MustParseAddr(a))
	}
	d.answers[host] = as
}

func (d *fakeDNS) lookup(_ context.Context, host string) ([]netip.Addr, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls[host]++
	if as, ok := d.answers[host]; ok {
		return as, nil
	}
	return nil, errors.New("lookup " + host + ": server misbehaving")
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

var cmpAddrs = cmpopts.EquateComparable(netip.Addr{})

// TestAddrBook: a failed lookup keeps the last addresses that worked, also
// across a restart (the state directory), and says so; a host never
// resolved has none to keep, and says that.
func TestAddrBook(t *testing.T) {
	dir := t.TempDir()
	dns := newFakeDNS()
	log := slog.New(slog.DiscardHandler)
	const url, relay = "https://coord.example:8443", "coord.example:8443"

	type step struct {
		name      string
		answer    []string // nil: the lookup fails
		restart   bool     // a new book on the same directory first
		want      []string // guarded coordinator addresses
		wantRelay string   // "" : no relay address
		wantWarn  string   // substring of the one warning; "" none
		sameKey   bool     // the guards are built from what they were
	}
	steps := []step{
		{name: "never resolved, lookup fails", want: nil, wantWarn: "looking up the coordinator's host coord.example failed (lookup coord.example: server misbehaving) and no earlier address is known: nothing keeps it out of the tunnel"},
		{name: "resolves", answer: []string{"198.51.100.10", "::ffff:198.51.100.11"}, want: []string{"198.51.100.10", "198.51.100.11"}, wantRelay: "198.51.100.10:8443"},
		{name: "lookup fails: last known kept", want: []string{"198.51.100.10", "198.51.100.11"}, wantRelay: "198.51.100.10:8443",
			wantWarn: "looking up the coordinator's host coord.example failed (lookup coord.example: server misbehaving): its last known addresses [198.51.100.10 198.51.100.11] (resolved "},
		{name: "restarted, lookup fails: saved addresses kept", restart: true, sameKey: true, want: []string{"198.51.100.10", "198.51.100.11"}, wantRelay: "198.51.100.10:8443",
			wantWarn: "its last known addresses [198.51.100.10 198.51.100.11]"},
		{name: "record changes", answer: []string{"198.51.100.12"}, want: []string{"198.51.100.12"}, wantRelay: "198.51.100.12:8443"},
		{name: "restarted, lookup fails: the newest saved", restart: true, want: []string{"198.51.100.12"}, wantRelay: "198.51.100.12:8443", wantWarn: "[198.51.100.12]"},
	}
	b := newAddrBook(dir, dns.lookup, log)
	prevKey := ""
	for _, st := range steps {
		if st.restart {
			b = newAddrBook(dir, dns.lookup, log)
		}
		dns.set("coord.example", st.answer...)
		before := dns.calls["coord.example"]
		h := b.resolveHard(context.Background(), url, relay)
		if got := dns.calls["coord.example"] - before; got != 1 {
			t.Errorf("%s: %d lookups of the one host, want 1", st.name, got)
		}
		if diff := cmp.Diff(addrs(st.want...), h.coord.addrs, cmpAddrs, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: coordinator addresses (-want +got):\n%s", st.name, diff)
		}
		ra, err := h.relayAddr()
		if st.wantRelay == "" {
			if err == nil {
				t.Errorf("%s: relay address %v, want an error", st.name, ra)
			}
		} else if err != nil || ra.String() != st.wantRelay {
			t.Errorf("%s: relay address %v, %v; want %s", st.name, ra, err, st.wantRelay)
		}
		ws := h.warnings()
		switch {
		case st.wantWarn == "" && len(ws) != 0:
			t.Errorf("%s: warnings %q, want none", st.name, ws)
		case st.wantWarn != "" && (len(ws) != 1 || !strings.Contains(ws[0], st.wantWarn)):
			t.Errorf("%s: warnings %q, want one containing %q", st.name, ws, st.wantWarn)
		}
		if h.failing() != (st.answer == nil) {
			t.Errorf("%s: failing = %t", st.name, h.failing())
		}
		if (h.key() == prevKey) != st.sameKey {
			t.Errorf("%s: key %q after %q: same %t, want %t", st.name, h.key(), prevKey, h.key() == prevKey, st.sameKey)
		}
		prevKey = h.key()
	}
	fi, err := os.Stat(filepath.Join(dir, resolvedFile))
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("%s mode %v, want 0600", resolvedFile, got)
	}
}

func TestAddrBookLiteralsAndBadInput(t *testing.T) {
	dns := newFakeDNS()
	b := newAddrBook(t.TempDir(), dns.lookup, slog.New(slog.DiscardHandler))
	h := b.resolveHard(context.Background(), "https://[2001:db8::1]:8443", "198.51.100.10:3478")
	if diff := cmp.Diff(addrs("2001:db8::1"), h.coord.addrs, cmpAddrs); diff != "" || h.failing() {
		t.Errorf("literal coordinator: %s, failing %t", diff, h.failing())
	}
	if ra, err := h.relayAddr(); err != nil || ra.String() != "198.51.100.10:3478" {
		t.Errorf("literal relay: %v, %v", ra, err)
	}
	if len(dns.calls) != 0 {
		t.Errorf("lookups of literals: %v", dns.calls)
	}
	if _, err := b.resolveHard(context.Background(), "https://198.51.100.10", "no-port").relayAddr(); err == nil {
		t.Error("relay endpoint without a port accepted")
	}
	// A corrupt file is ignored, not fatal.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, resolvedFile), []byte("{"), 0o600)
	if b := newAddrBook(dir, dns.lookup, slog.New(slog.DiscardHandler)); len(b.known) != 0 {
		t.Errorf("corrupt file loaded as %v", b.known)
	}
}
