package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/warrennet/warren/overlay/agent"
	"github.com/warrennet/warren/overlay/ctl"
	"github.com/warrennet/warren/overlay/flowtrack"
	"github.com/warrennet/warren/overlay/nodestate"
	"github.com/warrennet/warren/overlay/relay"
	"github.com/warrennet/warren/overlay/wgdev"
	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/platform"
	"github.com/warrennet/warren/routes"
)

// Platform is the OS integration the engine needs.
type Platform interface {
	// CreateTUN creates the tunnel device.
	CreateTUN(name string, mtu int) (tun.Device, error)
	// NewRouter returns the router that installs addresses and routes.
	NewRouter() (Router, error)
	// Cleanup removes what a crashed earlier run left installed.
	Cleanup(iface string) error
	// DefaultGateways lists the machine's default gateways, which must
	// never enter the tunnel.
	DefaultGateways() ([]netip.Addr, error)
	// LocalPrefixes lists the prefixes directly connected to the
	// machine's other interfaces (its LANs).
	LocalPrefixes() ([]netip.Prefix, error)
}

// Router installs the tunnel's addresses and routes; see platform.Router.
type Router interface {
	Set(cfg *platform.Config) error
	Close() error
}

// Config configures an Engine.
type Config struct {
	// StateDir holds the identity, the last netmap and the daemon's prefs.
	StateDir string
	// Interface names the TUN device; MTU is the tunnel MTU.
	Interface string
	MTU       int
	Hostname  string
	Platform  Platform
	Logger    *slog.Logger
	// NewBind makes the wireguard-go Bind; nil means a relay.Bind.
	// Tests pass another.
	NewBind func() (conn.Bind, Relay)
	// RelayOnly keeps every peer on the relay: the Bind looks for no
	// direct path.
	RelayOnly bool
	// Waits bound how long Up waits for the first netmap and for
	// handshakes; zero means 20 s and 15 s.
	NetMapWait, HandshakeWait time.Duration
	// LookupHost resolves the coordinator's and the relay's host names;
	// nil means the system resolver. Tests pass another.
	LookupHost func(ctx context.Context, host string) ([]netip.Addr, error)
	// NewNodeAPI returns the coordinator's node calls for an identity;
	// nil means coordclient's. Tests pass another.
	NewNodeAPI func(id *nodestate.Identity) (NodeAPI, error)
	// Userspace says Platform is the userspace mode's (a Userspace): the
	// tunnel device is a netstack through which DialContext opens the
	// flows the tunnel carries, and nothing is installed in the OS.
	Userspace bool
	// Dial opens connections through the OS for DialContext: to
	// destinations the tunnel does not carry, and in TUN mode to those it
	// does (the kernel routes them into the TUN). nil means a net.Dialer.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// Proxies reports the local proxies' listen addresses for Status;
	// nil when there are none.
	Proxies func() ctl.Proxies
}

// Relay is the part of the relay Bind the engine steers and reports.
type Relay interface {
	SetRelay(addr netip.AddrPort, credential string)
	Status() relay.BindStatus
	// Direct returns the direct path's address to peer k; the zero
	// AddrPort while k is reached through the relay.
	Direct(k wire.Key) netip.AddrPort
}

// Engine is the laptop daemon's state. It implements ctl.Backend.
type Engine struct {
	cfg   Config
	dir   *nodestate.Dir
	log   *slog.Logger
	addrs *addrBook // the hard guards' hosts, with their last good addresses

	// upMu serialises Up and Down.
	upMu sync.Mutex

	// mu guards everything below. Held only for field access, never
	// while calling out.
	mu        sync.Mutex
	running   *session // nil while down
	coordErr  string
	connected bool
	since     time.Time
	// denials are the last flows connectors refused this node, newest
	// first, at most ctl.MaxDenials.
	denials []ctl.Denial

	// certMu guards the SSH certificates' registrations (a file in the
	// state directory). Held only for reading or writing that file.
	certMu sync.Mutex
	// certKick wakes the renewal of SSH certificates: one was added.
	certKick chan struct{}

	// routed is what the tunnel routes (the installed prefixes), which
	// the Bind must never reach directly.
	routed atomic.Pointer[[]netip.Prefix]
}

// session is one up period: the devices and the control session.
type session struct {
	id     *nodestate.Identity
	filter *flowtrack.Device // the TUN, as wireguard-go sees it
	dev    *wgdev.Device
	relay  Relay
	router Router
	// tunnel dials through the tunnel in userspace mode; nil in TUN mode.
	tunnel tunnelDialer
	cancel context.CancelFunc
	done   chan struct{} // closed when the agent has returned
	runErr error         // set before done closes
	// watched is closed when watchAddrs has returned, renewed when
	// renewSSHCerts has.
	watched, renewed chan struct{}

	// applyMu serialises applying netmaps: the session's and a settings
	// change's.
	applyMu sync.Mutex

	mu      sync.Mutex // guards the fields below
	nm      *wire.NetMap
	applied chan struct{} // closed at the first applied netmap
	view    *view
}

// New returns an engine. It touches nothing until Run or Up.
func New(cfg Config) (*Engine, error) {
	if cfg.Platform == nil {
		return nil, errors.New("client: no platform")
	}
	if cfg.Interface == "" {
		cfg.Interface = "warren0"
	}
	if cfg.MTU == 0 {
		cfg.MTU = 1280
	}
	if cfg.NetMapWait == 0 {
		cfg.NetMapWait = 20 * time.Second
	}
	if cfg.HandshakeWait == 0 {
		cfg.HandshakeWait = 15 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	dir, err := nodestate.Open(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	if cfg.LookupHost == nil {
		cfg.LookupHost = defaultLookup
	}
	if cfg.NewNodeAPI == nil {
		cfg.NewNodeAPI = newNodeAPI
	}
	if cfg.Dial == nil {
		var d net.Dialer
		cfg.Dial = d.DialContext
	}
	e := &Engine{cfg: cfg, dir: dir, log: cfg.Logger, certKick: make(chan struct{}, 1)}
	e.addrs = newAddrBook(dir.Path(), cfg.LookupHost, cfg.Logger)
	if e.cfg.NewBind == nil {
		e.cfg.NewBind = func() (conn.Bind, Relay) {
			b := relay.NewBind(relay.BindConfig{Logger: cfg.Logger, RelayOnly: cfg.RelayOnly, Exclude: e.tunnelled})
			return b, b
		}
	}
	return e, nil
}

// tunnelled reports whether a is routed into the tunnel: an overlay
// address or inside an installed prefix. The Bind never sends there
// directly, or the tunnel would carry itself.
func (e *Engine) tunnelled(a netip.Addr) bool {
	if routes.Overlay.Contains(a) {
		return true
	}
	if r := e.routed.Load(); r != nil {
		for _, p := range *r {
			if p.Contains(a) {
				return true
			}
		}
	}
	return false
}

// Run removes what a crashed earlier run left, brings the tunnel up again
// if it was up when the daemon last stopped, and takes it down (keeping
// that wish) when ctx ends.
func (e *Engine) Run(ctx context.Context) error {
	if err := e.cfg.Platform.Cleanup(e.cfg.Interface); err != nil {
		e.log.Warn("removing leftovers of an earlier run", "err", err)
	}
	if p, err := e.loadPrefs(); err == nil && p.WantUp {
		go func() {
			if err := e.Up(ctx, ctl.UpRequest{}, func(p ctl.Progress) { e.log.Info("resuming: " + p.Message) }); err != nil {
				e.log.Warn("bringing the tunnel back up", "err", err)
			}
		}()
	}
	<-ctx.Done()
	e.upMu.Lock()
	defer e.upMu.Unlock()
	e.stop()
	return nil
}

// Up implements ctl.Backend.
func (e *Engine) Up(ctx context.Context, req ctl.UpRequest, progress func(ctl.Progress)) error {
	e.upMu.Lock()
	defer e.upMu.Unlock()
	return e.up(ctx, req, progress)
}

// up brings the tunnel up, enrolling first if needed. Call with upMu held.
func (e *Engine) up(ctx context.Context, req ctl.UpRequest, progress func(ctl.Progress)) error {
	say := func(m string) { progress(ctl.Progress{Message: m}) }
	e.mu.Lock()
	s := e.running
	e.mu.Unlock()
	if s == nil {
		id, err := e.enrollment(ctx, req, progress)
		if err != nil {
			return err
		}
		s, err = e.start(id)
		if err != nil {
			return err
		}
		if err := e.editPrefs(func(p *prefs) { p.WantUp = true }); err != nil {
			e.log.Warn("saving prefs", "err", err)
		}
		say("connecting to the coordinator at " + id.URL)
	}
	return e.waitReady(ctx, s, say)
}

// start creates the devices and starts the control session.
func (e *Engine) start(id *nodestate.Identity) (*session, error) {
	td, err := e.cfg.Platform.CreateTUN(e.cfg.Interface, e.cfg.MTU)
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", e.cfg.Interface, err)
	}
	var tunnel tunnelDialer
	if e.cfg.Userspace {
		var ok bool
		if tunnel, ok = td.(tunnelDialer); !ok {
			td.Close()
			return nil, errors.New("the userspace platform's device cannot dial")
		}
	}
	// Between wireguard-go and the TUN: connectors may answer the flows
	// this machine opens, and reach nothing else on it.
	filter := flowtrack.New(td, flowtrack.Config{Logger: e.log})
	bind, rel := e.cfg.NewBind()
	dev, err := wgdev.New(filter, bind, e.log)
	if err != nil {
		td.Close()
		return nil, err
	}
	router, err := e.cfg.Platform.NewRouter()
	if err != nil {
		dev.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{id: id, filter: filter, dev: dev, relay: rel, router: router, tunnel: tunnel, cancel: cancel, done: make(chan struct{}), watched: make(chan struct{}), renewed: make(chan struct{}), applied: make(chan struct{})}
	go e.watchAddrs(ctx, s)
	go e.renewSSHCerts(ctx, s)
	go func() {
		defer close(s.done)
		s.runErr = agent.Run(ctx, agent.Config{
			Dir:      e.dir,
			Identity: id,
			Apply:    func(ctx context.Context, nm *wire.NetMap) error { return e.apply(ctx, s, nm) },
			OnState:  e.onState,
			OnDenial: e.onDenial,
			Logger:   e.log,
		})
		if errors.Is(s.runErr, context.Canceled) {
			s.runErr = nil
		} else if s.runErr != nil {
			e.log.Error("control session ended", "err", s.runErr)
		}
	}()
	e.mu.Lock()
	e.running, e.connected, e.coordErr = s, false, ""
	e.mu.Unlock()
	return s, nil
}

func (e *Engine) onState(connected bool, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if connected != e.connected {
		e.since = time.Now()
	}
	e.connected = connected
	e.coordErr = ""
	if err != nil && !connected {
		e.coordErr = err.Error()
	}
}

// onDenial keeps a denial the coordinator reported for status. A denial
// like the newest one (same destination, connector and reason) is counted
// into it, so a retrying program does not push everything else out.
func (e *Engine) onDenial(rec wire.FlowRecord) {
	at := rec.Start
	if at.IsZero() {
		at = time.Now()
	}
	d := ctl.Denial{At: at, Dest: rec.Dst, Proto: rec.Proto, Connector: rec.Connector, Reason: rec.Reason, Count: 1}
	e.log.Debug("a connector refused a flow", "dest", rec.Dst, "proto", rec.Proto, "connector", rec.Connector, "reason", rec.Reason)
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.denials) > 0 {
		top := &e.denials[0]
		if top.Dest == d.Dest && top.Proto == d.Proto && top.Connector == d.Connector && top.Reason == d.Reason {
			top.Count++
			if d.At.After(top.At) {
				top.At = d.At
			}
			return
		}
	}
	e.denials = slices.Insert(e.denials, 0, d)
	if len(e.denials) > ctl.MaxDenials {
		e.denials = e.denials[:ctl.MaxDenials]
	}
}

// handshakePoll is how often waitReady looks for the handshakes.
const handshakePoll = 10 * time.Millisecond

// waitReady returns once a netmap is applied and every connector that
// serves a tunnelled route has completed a handshake.
func (e *Engine) waitReady(ctx context.Context, s *session, progress func(string)) error {
	select {
	case <-s.applied:
	case <-s.done:
		return fmt.Errorf("the control session ended: %w", s.runErr)
	case <-time.After(e.cfg.NetMapWait):
		e.mu.Lock()
		why := e.coordErr
		e.mu.Unlock()
		if why == "" {
			why = "no netmap yet"
		}
		return fmt.Errorf("not up yet: %s; still trying in the background (see: warren status)", why)
	case <-ctx.Done():
		return ctx.Err()
	}
	v := s.currentView()
	progress(fmt.Sprintf("netmap v%d applied: tunnelling %s", v.version, plural(len(v.tunnel), "prefix", "prefixes")))
	pending := map[string]bool{}
	for _, c := range v.connectors() {
		pending[c] = true
	}
	deadline := time.After(e.cfg.HandshakeWait)
	// A handshake through the relay takes a few milliseconds: look
	// often, so that up returns soon after it (a look is one UAPI get).
	tick := time.NewTicker(handshakePoll)
	defer tick.Stop()
	for len(pending) > 0 {
		stats := e.handshakes(s)
		for name := range pending {
			if hs, ok := stats[name]; ok && !hs.IsZero() {
				progress("connector " + name + ": handshake complete, routes live")
				delete(pending, name)
			}
		}
		if len(pending) == 0 {
			break
		}
		select {
		case <-tick.C:
		case <-deadline:
			var names []string
			for n := range pending {
				names = append(names, n)
			}
			return fmt.Errorf("no handshake with connector %v within %v: is it online? (see: warren status)", names, e.cfg.HandshakeWait)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// handshakes maps connector names to their last handshake time.
func (e *Engine) handshakes(s *session) map[string]time.Time {
	stats, err := s.dev.Stats()
	if err != nil {
		return nil
	}
	v := s.currentView()
	out := map[string]time.Time{}
	for _, st := range stats {
		if p, ok := v.byKey[st.PublicKey]; ok {
			out[p.Name] = st.LastHandshake
		}
	}
	return out
}

// Down implements ctl.Backend.
func (e *Engine) Down(ctx context.Context) error {
	e.upMu.Lock()
	defer e.upMu.Unlock()
	if err := e.editPrefs(func(p *prefs) { p.WantUp = false }); err != nil {
		e.log.Warn("saving prefs", "err", err)
	}
	e.stop()
	return nil
}

// stop tears the session down and removes everything installed.
func (e *Engine) stop() {
	e.mu.Lock()
	s := e.running
	e.running, e.connected = nil, false
	e.mu.Unlock()
	if s == nil {
		return
	}
	s.cancel()
	<-s.done
	<-s.watched // no re-apply may reinstall routes after this
	<-s.renewed
	if err := s.router.Set(nil); err != nil {
		e.log.Warn("removing routes", "err", err)
	}
	s.router.Close()
	s.dev.Close() // closes the TUN and the Bind
	e.log.Info("tunnel down")
}

// watchAddrs looks the hard guards' hosts up again, every addrRetry while
// a lookup fails and every addrRefresh otherwise, and re-applies the
// netmap when what the guards were built from changed. It returns when
// ctx ends, closing s.watched.
func (e *Engine) watchAddrs(ctx context.Context, s *session) {
	defer close(s.watched)
	t := time.NewTimer(addrRetry)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		next := addrRefresh
		if v := s.currentView(); v != nil {
			s.mu.Lock()
			nm := s.nm
			s.mu.Unlock()
			now := e.addrs.resolveHard(ctx, s.id.URL, nm.Relay.Endpoint)
			if now.key() != v.hard.key() {
				e.log.Info("the coordinator's or the relay's addresses changed: applying the netmap again")
				if err := e.reapply(ctx, s); err != nil && ctx.Err() == nil {
					e.log.Warn("applying the netmap again", "err", err)
				}
			}
			if now.failing() {
				next = addrRetry
			}
		} else {
			next = addrRetry
		}
		t.Reset(next)
	}
}

// mode is how this engine carries traffic, for Status.
func (e *Engine) mode() ctl.Mode {
	if e.cfg.Userspace {
		return ctl.ModeUserspace
	}
	return ctl.ModeTUN
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
