package client_test

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrennet/warren/overlay/agent"
	"github.com/warrennet/warren/overlay/client"
	"github.com/warrennet/warren/overlay/ctl"
	"github.com/warrennet/warren/overlay/nodestate"
	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/test/coordtest"
)

// switchDNS answers every lookup with one address until it is broken.
type switchDNS struct {
	mu     sync.Mutex // guards answer
	answer netip.Addr // invalid: the resolver is down
}

func (d *switchDNS) set(a netip.Addr) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.answer = a
}

func (d *switchDNS) lookup(_ context.Context, host string) ([]netip.Addr, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.answer.IsValid() {
		return nil, errors.New("lookup " + host + ": server misbehaving")
	}
	return []netip.Addr{d.answer}, nil
}

// laptopByName starts a real coordinator with a connector serving
// 192.0.2.0/24 and enrolls a laptop into a fresh state directory with a
// token naming the coordinator "localhost". The session dials that name
// with the system's resolver; the guards see what the test's resolver
// says it is, such as an address inside the route.
func laptopByName(ctx context.Context, t *testing.T) (*coordtest.Server, string, *nodestate.Identity) {
	t.Helper()
	s := coordtest.Start(t, coordtest.Options{})
	s.Enroll(t, wire.RoleConnector, "office", wire.Key{1, 42})
	if _, err := s.Coord.AddRoute(ctx, wire.AddRouteRequest{Prefix: "192.0.2.0/24", Connector: "office"}); err != nil {
		t.Fatal(err)
	}
	tok := s.Token(t, wire.CreateTokenRequest{Role: wire.RoleClient, Name: "laptop"})
	tok.URL = strings.Replace(tok.URL, "127.0.0.1", "localhost", 1)
	stateDir := t.TempDir()
	dir, err := nodestate.Open(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	id, err := agent.Enroll(ctx, dir, tok.String(), wire.RoleClient, "")
	if err != nil {
		t.Fatal(err)
	}
	return s, stateDir, id
}

// TestCoordinatorGuardSurvivesFailedLookup: the coordinator's URL names a
// host, and a route covers the address it resolves to. The address stays
// out of the tunnel when a later lookup fails, and after a restart with
// the resolver still down; status says why.
func TestCoordinatorGuardSurvivesFailedLookup(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, stateDir, id := laptopByName(ctx, t)
	coordAddr := netip.MustParseAddr("192.0.2.1")
	dns := &switchDNS{answer: coordAddr}
	start := func() (*client.Engine, *fakePlatform) {
		t.Helper()
		plat := &fakePlatform{addr: id.Node.Address}
		eng, err := client.New(client.Config{StateDir: stateDir, Platform: plat, LookupHost: dns.lookup})
		if err != nil {
			t.Fatal(err)
		}
		if err := eng.Up(ctx, ctl.UpRequest{}, func(ctl.Progress) {}); err != nil {
			t.Fatalf("Up: %v", err)
		}
		return eng, plat
	}
	// check waits until the installed routes cover want, then asserts
	// that none covers the coordinator and status says what warn says.
	check := func(when string, eng *client.Engine, plat *fakePlatform, want netip.Addr, warn string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !covers(plat.installed(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %v never installed: %v", when, want, plat.installed())
			}
			time.Sleep(10 * time.Millisecond)
		}
		if covers(plat.installed(), coordAddr) {
			t.Errorf("%s: the coordinator's address %v is tunnelled: routes %v", when, coordAddr, plat.installed())
		}
		var got []string
		for _, w := range eng.Status(ctx).Warnings {
			if strings.Contains(w, "coordinator's host") {
				got = append(got, w)
			}
		}
		if (warn == "") != (len(got) == 0) || (warn != "" && !strings.Contains(got[0], warn)) {
			t.Errorf("%s: status warnings about the coordinator %q, want %q", when, got, warn)
		}
	}

	eng, plat := start()
	check("resolved", eng, plat, netip.MustParseAddr("192.0.2.2"), "")

	// The resolver goes down; a netmap arrives (a new route).
	dns.set(netip.Addr{})
	if _, err := s.Coord.AddRoute(ctx, wire.AddRouteRequest{Prefix: "10.20.0.0/16", Connector: "office"}); err != nil {
		t.Fatal(err)
	}
	const kept = "looking up the coordinator's host localhost failed (lookup localhost: server misbehaving): its last known addresses [192.0.2.1]"
	check("lookup failed", eng, plat, netip.MustParseAddr("10.20.0.1"), kept)
	if err := eng.Down(ctx); err != nil {
		t.Fatal(err)
	}

	// A restarted daemon, the resolver still down.
	eng, plat = start()
	defer eng.Down(context.Background())
	check("restarted, lookup failing", eng, plat, netip.MustParseAddr("10.20.0.1"), kept)
}

// TestCoordinatorGuardRetried: a coordinator host never resolved cannot
// be guarded, which status says; once the resolver answers, the retry
// takes the address out of the tunnel without any new netmap.
func TestCoordinatorGuardRetried(t *testing.T) {
	defer client.SetAddrRetry(50 * time.Millisecond)()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, stateDir, id := laptopByName(ctx, t)
	coordAddr := netip.MustParseAddr("192.0.2.1")
	dns := &switchDNS{} // down
	plat := &fakePlatform{addr: id.Node.Address}
	eng, err := client.New(client.Config{StateDir: stateDir, Platform: plat, LookupHost: dns.lookup})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Up(ctx, ctl.UpRequest{}, func(ctl.Progress) {}); err != nil {
		t.Fatalf("Up: %v", err)
	}
	defer eng.Down(context.Background())
	if !covers(plat.installed(), coordAddr) {
		t.Fatalf("routes %v: the test needs the route to cover %v", plat.installed(), coordAddr)
	}
	ws := eng.Status(ctx).Warnings
	if !slices.ContainsFunc(ws, func(w string) bool {
		return strings.Contains(w, "no earlier address is known: nothing keeps it out of the tunnel")
	}) {
		t.Errorf("status warnings %q say nothing of the unguarded coordinator", ws)
	}
	dns.set(coordAddr)
	deadline := time.Now().Add(5 * time.Second)
	for covers(plat.installed(), coordAddr) {
		if time.Now().After(deadline) {
			t.Fatalf("coordinator %v still tunnelled 5 s after its name resolves: %v", coordAddr, plat.installed())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if ws := eng.Status(ctx).Warnings; len(ws) != 0 {
		t.Errorf("status warnings after the lookup worked: %q", ws)
	}
}

func covers(ps []netip.Prefix, a netip.Addr) bool {
	return slices.ContainsFunc(ps, func(p netip.Prefix) bool { return p.Contains(a) })
}
