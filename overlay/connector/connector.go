package connector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/warrennet/warren/netstack"
	"github.com/warrennet/warren/overlay/agent"
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
	// (dial_linux.go). Tests redirect it to loopback listeners.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Relay is the part of the relay Bind the connector steers.
type Relay interface {
	SetRelay(addr netip.AddrPort, credential string)
}

// Connector is a running connector.
type Connector struct {
	cfg Config
	log *slog.Logger
	id  *nodestate.Identity
	dir *nodestate.Dir

	stack *netstack.Stack
	dev   *wgdev.Device
	relay Relay

	// policy is the admission state of the last applied netmap.
	policy atomic.Pointer[policy]
	pinger *pinger
}

// policy is immutable; apply swaps in a new one.
type policy struct {
	version uint64
	served  *routes.Table
	clients map[netip.Addr]string // overlay address → client name
}

// New enrolls the connector if needed and builds its stack and WireGuard
// device. Run starts it.
func New(ctx context.Context, cfg Config) (*Connector, error) {
	if cfg.MTU == 0 {
		cfg.MTU = 1280
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Dial == nil {
		cfg.Dial = newLANDialer(cfg.DialTimeout).DialContext
	}
	if cfg.NewBind == nil {
		cfg.NewBind = func() (conn.Bind, Relay) {
			b := relay.NewBind(relay.BindConfig{Logger: cfg.Logger, RelayOnly: cfg.RelayOnly, Exclude: routes.Overlay.Contains})
			return b, b
		}
	}
	dir, err := nodestate.Open(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	id, err := agent.Enroll(ctx, dir, cfg.Token, wire.RoleConnector, cfg.Hostname)
	if err != nil {
		return nil, err
	}
	c := &Connector{cfg: cfg, log: cfg.Logger.With("node", id.Node.Name), id: id, dir: dir, pinger: newPinger(cfg.Logger)}
	c.policy.Store(&policy{served: mustTable(nil), clients: map[netip.Addr]string{}})
	c.stack, err = netstack.New(netstack.Config{
		MTU:       cfg.MTU,
		Addresses: []netip.Addr{id.Node.Address},
		Handler:   c,
		Logger:    c.log,
	})
	if err != nil {
		return nil, err
	}
	bind, rel := cfg.NewBind()
	c.relay = rel
	c.dev, err = wgdev.New(c.stack, bind, c.log)
	if err != nil {
		c.stack.Close()
		return nil, err
	}
	return c, nil
}

// Node is the connector's enrolled identity.
func (c *Connector) Node() wire.Node { return c.id.Node }

// Run serves until ctx ends or an admin removes the connector, then
// closes everything.
func (c *Connector) Run(ctx context.Context) error {
	defer c.dev.Close() // closes the stack and the bind
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

// apply makes nm the connector's configuration.
func (c *Connector) apply(ctx context.Context, nm *wire.NetMap) error {
	var entries []routes.Entry
	for _, r := range nm.Routes {
		if r.Connector == nm.Self.Name {
			entries = append(entries, routes.Entry{Prefix: r.Prefix, Owner: r.Connector})
		}
	}
	served, err := routes.NewTable(entries)
	if err != nil {
		return fmt.Errorf("building the served table: %w", err)
	}
	p := &policy{version: nm.Version, served: served, clients: map[netip.Addr]string{}}
	var peers []wgdev.Peer
	for _, peer := range nm.Peers {
		if peer.Role != wire.RoleClient {
			continue
		}
		p.clients[peer.Address] = peer.Name
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
	c.policy.Store(p)
	c.log.Info("netmap applied", "version", nm.Version, "clients", len(peers), "serving", len(entries))
	return nil
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

func mustTable(entries []routes.Entry) *routes.Table {
	t, err := routes.NewTable(entries)
	if err != nil {
		panic(err)
	}
	return t
}
