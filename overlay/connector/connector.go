package connector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/warrennet/warren/netstack"
	"github.com/warrennet/warren/overlay/agent"
	"github.com/warrennet/warren/overlay/flowlog"
	"github.com/warrennet/warren/overlay/nodestate"
	"github.com/warrennet/warren/overlay/relay"
	"github.com/warrennet/warren/overlay/wgdev"
	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/routes"
)

// Config configures a Connector.
type Config struct {
	// StateDir holds the identity and the last netmap.
	StateDir string
	// Token enrolls the connector on its first start.
	Token    string
	Hostname string
	MTU      int
	Logger   *slog.Logger
	// DialTimeout bounds each dial to a LAN host; zero means 10 s.
	DialTimeout time.Duration
	// NewBind makes the wireguard-go Bind; nil means a relay.Bind.
	NewBind func() (conn.Bind, Relay)
	// RelayOnly keeps every peer on the relay: the Bind looks for no
	// direct path and answers no peer that does.
	RelayOnly bool
	// Dial opens the LAN side of a flow; nil means a dialer with
	// DialTimeout that picks TCP's local ports itself on Linux
	// (dial_linux.go). Tests redirect it to loopback listeners. It is
	// called only for flows admission allowed.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Sink receives the connector's flow records (the coordinator's flow
	// report endpoint). The records wait in the state directory until it
	// takes them.
	Sink flowlog.Sink
	// NewSink builds the Sink from the enrolled identity when Sink is nil
	// (cmd/warren/run passes one that reports through the node's
	// credential). A Sink it returns that is an io.Closer is closed when
	// Run returns. With neither, records are kept in the state directory,
	// up to the flow log's bound, and not sent.
	NewSink func(id *nodestate.Identity) (flowlog.Sink, error)
}

// Relay is the part of the relay Bind the connector steers.
type Relay interface {
	SetRelay(addr netip.AddrPort, credential string)
}

// Connector is a running connector.
type Connector struct {
	cfg  Config
	log  *slog.Logger
	node wire.Node
	id   *nodestate.Identity
	dir  *nodestate.Dir

	stack *netstack.Stack
	dev   *wgdev.Device
	relay Relay

	// adm is the admission state of the last applied netmap; install
	// swaps it, under live.mu.
	adm  atomic.Pointer[admission]
	live registry
	// ping pings a LAN host (pinger.ping; tests replace it).
	ping func(ctx context.Context, dst netip.Addr, payload []byte) bool

	ids     *flowIDs
	denied  denials
	records recorder // where flow records go: flows, or a test's
	flows   *flowlog.Log
	// closeSink closes a Sink that NewSink built, or is nil.
	closeSink func() error
}

// newConnector builds the connector of node with its stack, without
// WireGuard or a flow log; cfg has its defaults. New completes it, and
// tests drive its stack directly.
func newConnector(cfg Config, node wire.Node, records recorder) (*Connector, error) {
	log := cfg.Logger.With("node", node.Name)
	c := &Connector{
		cfg:     cfg,
		log:     log,
		node:    node,
		live:    registry{flows: map[string]*liveFlow{}},
		ping:    newPinger(log).ping,
		ids:     newFlowIDs(),
		records: records,
	}
	c.adm.Store(noAdmission)
	var err error
	c.stack, err = netstack.New(netstack.Config{
		MTU:       cfg.MTU,
		Addresses: []netip.Addr{node.Address},
		Handler:   c,
		Logger:    log,
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// withDefaults returns c with its zero values replaced by defaults.
func (c Config) withDefaults() Config {
	if c.MTU == 0 {
		c.MTU = 1280
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Dial == nil {
		c.Dial = newLANDialer(c.DialTimeout).DialContext
	}
	if c.NewBind == nil {
		c.NewBind = func() (conn.Bind, Relay) {
			b := relay.NewBind(relay.BindConfig{Logger: c.Logger, RelayOnly: c.RelayOnly, Exclude: routes.Overlay.Contains})
			return b, b
		}
	}
	return c
}

// New enrolls the connector if needed and builds its stack and WireGuard
// device. Run starts it.
func New(ctx context.Context, cfg Config) (*Connector, error) {
	cfg = cfg.withDefaults()
	dir, err := nodestate.Open(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	id, err := agent.Enroll(ctx, dir, cfg.Token, wire.RoleConnector, cfg.Hostname)
	if err != nil {
		return nil, err
	}
	sink, closeSink := cfg.Sink, func() error { return nil }
	if sink == nil && cfg.NewSink != nil {
		if sink, err = cfg.NewSink(id); err != nil {
			return nil, fmt.Errorf("building the flow sink: %w", err)
		}
		if cl, ok := sink.(io.Closer); ok {
			closeSink = cl.Close
		}
	}
	flows, err := flowlog.New(flowlog.Config{Dir: filepath.Join(dir.Path(), flowSpoolDir), Sink: sink, Logger: cfg.Logger.With("node", id.Node.Name)})
	if err != nil {
		closeSink()
		return nil, err
	}
	c, err := newConnector(cfg, id.Node, flows)
	if err != nil {
		closeSink()
		return nil, err
	}
	c.id, c.dir, c.flows, c.closeSink = id, dir, flows, closeSink
	bind, rel := cfg.NewBind()
	c.relay = rel
	c.dev, err = wgdev.New(c.stack, bind, c.log)
	if err != nil {
		c.stack.Close()
		closeSink()
		return nil, err
	}
	return c, nil
}

// flowSpoolDir is the flow log's spool, inside the state directory.
const flowSpoolDir = "flows"

// Node is the connector's enrolled identity.
func (c *Connector) Node() wire.Node { return c.node }

// Run serves until ctx ends or an admin removes the connector, then
// closes everything.
//
// The flow log runs beside the agent, under Run. Shutdown order: the
// device closes (the stack with it, which waits for every flow handler,
// so every flow has been recorded); then the flow log stops, writing what
// is still queued to the spool, for the next start to send; then the
// Sink NewSink built is closed.
func (c *Connector) Run(ctx context.Context) error {
	logCtx, stopLog := context.WithCancel(context.WithoutCancel(ctx))
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		c.flows.Run(logCtx)
	}()
	defer func() {
		c.dev.Close() // closes the stack and the bind
		stopLog()
		<-logDone
		c.closeSink()
	}()
	c.log.Info("connector starting", "address", c.id.Node.Address, "coordinator", c.id.URL)
	err := agent.Run(ctx, agent.Config{
		Dir:      c.dir,
		Identity: c.id,
		Apply:    c.apply,
		OnState: func(connected bool, err error) {
			if connected {
				c.log.Info("connected to the coordinator")
			} else if err != nil {
				c.log.Warn("coordinator connection", "err", err)
			}
		},
		Logger: c.log,
	})
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// apply makes nm the connector's configuration. The admission state goes
// first, so that a policy that shrinks, or a client removed, cuts the
// flows it no longer allows before anything else happens.
func (c *Connector) apply(ctx context.Context, nm *wire.NetMap) error {
	a, err := newAdmission(nm, c.hostAddrs())
	if err != nil {
		return err
	}
	cut := c.install(a)
	var peers []wgdev.Peer
	for _, peer := range nm.Peers {
		if peer.Role != wire.RoleClient {
			continue
		}
		peers = append(peers, wgdev.Peer{
			PublicKey:           peer.PublicKey,
			AllowedIPs:          []netip.Prefix{netip.PrefixFrom(peer.Address, peer.Address.BitLen())},
			Endpoint:            "relay:" + peer.PublicKey.String(),
			PersistentKeepalive: 25 * time.Second,
		})
	}
	if nm.Relay.Endpoint != "" {
		addr, err := netip.ParseAddrPort(nm.Relay.Endpoint)
		if err != nil {
			ips, lerr := net.DefaultResolver.LookupNetIP(ctx, "ip", hostOf(nm.Relay.Endpoint))
			if lerr != nil || len(ips) == 0 {
				return fmt.Errorf("relay endpoint %q: %w", nm.Relay.Endpoint, err)
			}
			addr = netip.AddrPortFrom(ips[0].Unmap(), portOf(nm.Relay.Endpoint))
		}
		c.relay.SetRelay(addr, nm.Relay.Credential)
	}
	if err := c.dev.Apply(wgdev.Config{PrivateKey: c.id.PrivateKey, Peers: peers}); err != nil {
		return fmt.Errorf("configuring wireguard: %w", err)
	}
	c.log.Info("netmap applied", "version", nm.Version, "clients", len(peers), "serving", a.served.Len(),
		"policy", policyMode(a.enforced), "flows_cut", cut)
	return nil
}

func policyMode(enforced bool) wire.PolicyMode {
	if enforced {
		return wire.PolicyEnforced
	}
	return wire.PolicyAllowAll
}

// hostAddrs returns the connector host's own addresses, and its overlay
// address: admission never serves them. They are read at every netmap.
func (c *Connector) hostAddrs() []netip.Addr {
	out := []netip.Addr{c.node.Address}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		c.log.Warn("reading this host's addresses; they are served if routed", "err", err)
		return out
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr())
		}
	}
	return out
}

func hostOf(hostport string) string {
	h, _, _ := net.SplitHostPort(hostport)
	return h
}

func portOf(hostport string) uint16 {
	_, p, _ := net.SplitHostPort(hostport)
	var n uint16
	fmt.Sscan(p, &n)
	return n
}
