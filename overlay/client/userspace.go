package client

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"

	"golang.zx2c4.com/wireguard/tun"

	"github.com/warrennet/warren/netstack"
	"github.com/warrennet/warren/platform"
)

// Userspace is the Platform of the userspace mode (`warren daemon
// --userspace`): it needs no root and changes nothing in the OS. The
// tunnel device is a local netstack.Stack, which owns the node's overlay
// addresses and through which the engine's DialContext opens the flows
// the tunnel carries; its Router gives the stack the addresses and
// records the routes, installing nothing; Cleanup has nothing to clean.
// The default gateways and the LANs are read as an ordinary user can
// (netlink dumps on Linux); where that is not supported, none.
type Userspace struct {
	log *slog.Logger

	mu  sync.Mutex      // guards cur
	cur *netstack.Stack // the device CreateTUN made last
}

var _ Platform = (*Userspace)(nil)

// NewUserspace returns the userspace Platform.
func NewUserspace(log *slog.Logger) *Userspace {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Userspace{log: log}
}

// CreateTUN implements Platform: a local netstack with no addresses yet
// (the Router gives it the node's).
func (u *Userspace) CreateTUN(_ string, mtu int) (tun.Device, error) {
	s, err := netstack.NewLocal(netstack.LocalConfig{MTU: mtu, Logger: u.log})
	if err != nil {
		return nil, fmt.Errorf("creating the userspace network stack: %w", err)
	}
	u.mu.Lock()
	u.cur = s
	u.mu.Unlock()
	return s, nil
}

// NewRouter implements Platform: a router for the stack CreateTUN made
// last.
func (u *Userspace) NewRouter() (Router, error) {
	u.mu.Lock()
	s := u.cur
	u.mu.Unlock()
	if s == nil {
		return nil, errors.New("no userspace network stack yet")
	}
	return &userspaceRouter{stack: s}, nil
}

// Cleanup implements Platform: a userspace daemon leaves nothing behind.
func (u *Userspace) Cleanup(string) error { return nil }

// DefaultGateways implements Platform, best effort: none where the OS
// cannot be asked.
func (u *Userspace) DefaultGateways() ([]netip.Addr, error) {
	gws, err := platform.DefaultGateways()
	if errors.Is(err, platform.ErrNotSupported) {
		return nil, nil
	}
	return gws, err
}

// LocalPrefixes implements Platform, best effort: none where the OS
// cannot be asked. There is no Warren interface to leave out.
func (u *Userspace) LocalPrefixes() ([]netip.Prefix, error) {
	ps, err := platform.LocalPrefixes("")
	if errors.Is(err, platform.ErrNotSupported) {
		return nil, nil
	}
	return ps, err
}

// userspaceRouter gives the stack the tunnel's addresses and records the
// routes: nothing reaches the OS. The engine decides from the same
// routes what DialContext sends through the stack.
type userspaceRouter struct {
	stack *netstack.Stack

	mu     sync.Mutex // guards routes and closed
	routes []netip.Prefix
	closed bool
}

// Set implements Router.
func (r *userspaceRouter) Set(cfg *platform.Config) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return platform.ErrClosed
	}
	var addrs []netip.Addr
	var routes []netip.Prefix
	if cfg != nil {
		if err := cfg.Validate(); err != nil {
			return err
		}
		for _, p := range cfg.Addresses {
			addrs = append(addrs, p.Addr())
		}
		routes = slices.Clone(cfg.Routes)
	}
	if err := r.stack.SetAddresses(addrs); err != nil {
		return fmt.Errorf("giving the userspace stack its addresses: %w", err)
	}
	r.routes = routes
	return nil
}

// Close implements Router: it removes the stack's addresses.
func (r *userspaceRouter) Close() error {
	err := r.Set(nil)
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	if errors.Is(err, platform.ErrClosed) {
		return nil
	}
	return err
}
