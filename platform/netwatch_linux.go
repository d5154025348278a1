//go:build linux

package platform

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// watchBuffer is the receive buffer of each rtnetlink subscription: room
// for a burst (a VPN or container runtime adding many routes) before the
// kernel drops messages, which costs a resubscription.
const watchBuffer = 1 << 20

// resubscribeAfter paces subscriptions after one broke.
const resubscribeAfter = time.Second

// subscribe sends the link, address and route changes rtnetlink reports
// to events until ctx ends, subscribing again (after reporting a change)
// when a subscription breaks. It returns nil when ctx ends, or the error
// of the first subscription.
func subscribe(ctx context.Context, events chan<- netEvent, log *slog.Logger) error {
	first := true
	for {
		err := subscribeOnce(ctx, events, first)
		if ctx.Err() != nil {
			return nil
		}
		if first && err != nil {
			return err
		}
		first = false
		log.Warn("the network watch broke; subscribing again", "err", err)
		select {
		case events <- netEvent{what: "the network watch broke (" + err.Error() + ")"}:
		case <-ctx.Done():
			return nil
		}
		select {
		case <-time.After(resubscribeAfter):
		case <-ctx.Done():
			return nil
		}
	}
}

// subscribeOnce holds one set of subscriptions until ctx ends (nil) or
// one of them breaks (its error).
func subscribeOnce(ctx context.Context, events chan<- netEvent, first bool) error {
	done := make(chan struct{})
	links := make(chan netlink.LinkUpdate, 64)
	addrs := make(chan netlink.AddrUpdate, 64)
	routes := make(chan netlink.RouteUpdate, 64)
	errc := make(chan error, 3)
	onErr := func(err error) {
		select {
		case errc <- err:
		default:
		}
	}
	// Every subscription's goroutine closes its channel once done is
	// closed; wait for all three, draining them meanwhile.
	open := 0
	defer func() {
		close(done)
		for open > 0 {
			select {
			case _, ok := <-links:
				if !ok {
					links = nil
					open--
				}
			case _, ok := <-addrs:
				if !ok {
					addrs = nil
					open--
				}
			case _, ok := <-routes:
				if !ok {
					routes = nil
					open--
				}
			}
		}
	}()
	if err := netlink.LinkSubscribeWithOptions(links, done, netlink.LinkSubscribeOptions{ErrorCallback: onErr, ReceiveBufferSize: watchBuffer}); err != nil {
		return fmt.Errorf("subscribing to link changes: %w", err)
	}
	open++
	if err := netlink.AddrSubscribeWithOptions(addrs, done, netlink.AddrSubscribeOptions{ErrorCallback: onErr, ReceiveBufferSize: watchBuffer}); err != nil {
		return fmt.Errorf("subscribing to address changes: %w", err)
	}
	open++
	if err := netlink.RouteSubscribeWithOptions(routes, done, netlink.RouteSubscribeOptions{ErrorCallback: onErr, ReceiveBufferSize: watchBuffer}); err != nil {
		return fmt.Errorf("subscribing to route changes: %w", err)
	}
	open++
	names := map[int]string{}  // interface index → name, from link messages
	states := map[int]string{} // interface index → what its last link message said
	name := func(index int) string {
		if n, ok := names[index]; ok {
			return n
		}
		if ifi, err := net.InterfaceByIndex(index); err == nil {
			names[index] = ifi.Name
			return ifi.Name
		}
		return fmt.Sprintf("interface %d", index)
	}
	for {
		var ev netEvent
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			return err
		case u, ok := <-links:
			if !ok {
				links = nil
				open--
				return errors.New("the link subscription ended")
			}
			ev = linkEvent(u)
			i := int(u.Index)
			if u.Header.Type == unix.RTM_DELLINK {
				delete(names, i)
				delete(states, i)
			} else {
				names[i] = ev.iface
				// The kernel sends a link message for many changes
				// that do not matter here (a statistic, an attribute
				// of a bridge): only up, down, new and gone count.
				was, seen := states[i]
				states[i] = ev.what
				if seen && was == ev.what {
					continue
				}
			}
		case u, ok := <-addrs:
			if !ok {
				addrs = nil
				open--
				return errors.New("the address subscription ended")
			}
			var keep bool
			if ev, keep = addrEvent(u, name(u.LinkIndex)); !keep {
				continue
			}
		case u, ok := <-routes:
			if !ok {
				routes = nil
				open--
				return errors.New("the route subscription ended")
			}
			var keep bool
			if ev, keep = routeEvent(u, name); !keep {
				continue
			}
		}
		select {
		case events <- ev:
		case <-ctx.Done():
			return nil
		}
	}
}

func linkEvent(u netlink.LinkUpdate) netEvent {
	a := u.Attrs()
	what := "link changed"
	switch {
	case u.Header.Type == unix.RTM_DELLINK:
		what = "link removed"
	case a.Flags&net.FlagUp == 0:
		what = "link down"
	case a.OperState == netlink.OperUp || a.OperState == netlink.OperUnknown:
		what = "link up"
	}
	return netEvent{iface: a.Name, what: what}
}

// addrEvent describes an address change, or reports false for a
// link-local address's, which come and go with links.
func addrEvent(u netlink.AddrUpdate, iface string) (netEvent, bool) {
	if u.LinkAddress.IP.IsLinkLocalUnicast() {
		return netEvent{}, false
	}
	what := "removed"
	if u.NewAddr {
		what = "added"
	}
	return netEvent{iface: iface, what: "address " + u.LinkAddress.String() + " " + what}, true
}

// routeEvent describes a route change, or reports false for one that does
// not count: the routes Warren installs (RouteProtocol), the kernel's
// cached routes (an IPv6 neighbour's, a path MTU's), and routes to
// link-local and multicast destinations, which come and go with links.
func routeEvent(u netlink.RouteUpdate, name func(int) string) (netEvent, bool) {
	r := u.Route
	if r.Protocol == RouteProtocol || r.Flags&unix.RTM_F_CLONED != 0 {
		return netEvent{}, false
	}
	if r.Dst != nil {
		if ip := r.Dst.IP; ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsMulticast() {
			return netEvent{}, false
		}
	}
	what := "route to " + routeString(r) + " added"
	if u.Type == unix.RTM_DELROUTE {
		what = "route to " + routeString(r) + " removed"
	}
	iface := ""
	if r.LinkIndex > 0 {
		iface = name(r.LinkIndex)
	}
	return netEvent{iface: iface, what: what}, true
}

func routeString(r netlink.Route) string {
	if r.Dst == nil {
		return "default"
	}
	return r.Dst.String()
}
