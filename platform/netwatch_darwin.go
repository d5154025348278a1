//go:build darwin

package platform

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"

	xroute "golang.org/x/net/route"
	"golang.org/x/sys/unix"
)

// subscribe sends the interface, address and route changes the routing
// socket reports to events until ctx ends. It returns nil when ctx ends,
// or the error that kept it from reading.
func subscribe(ctx context.Context, events chan<- netEvent, log *slog.Logger) error {
	fd, err := unix.Socket(unix.AF_ROUTE, unix.SOCK_RAW, unix.AF_UNSPEC)
	if err != nil {
		return fmt.Errorf("opening a routing socket: %w", err)
	}
	// Non-blocking, so that the runtime's poller owns it and Close ends
	// a Read in progress.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return fmt.Errorf("opening a routing socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), "routing socket")
	defer f.Close()
	stop := context.AfterFunc(ctx, func() { f.Close() })
	defer stop()
	buf := make([]byte, 16<<10)
	// up says whether each interface was up at its last message: macOS
	// repeats interface messages (awdl0 every few seconds), and only up
	// and down count.
	up := map[int]bool{}
	for {
		n, err := f.Read(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("reading the routing socket: %w", err)
		}
		msgs, err := xroute.ParseRIB(xroute.RIBTypeRoute, buf[:n])
		if err != nil {
			log.Debug("parsing a routing message", "err", err)
			continue
		}
		for _, m := range msgs {
			if im, ok := m.(*xroute.InterfaceMessage); ok {
				isUp := im.Flags&unix.IFF_UP != 0
				if was, seen := up[im.Index]; seen && was == isUp {
					continue
				}
				up[im.Index] = isUp
			}
			ev, ok := routingEvent(m)
			if !ok {
				continue
			}
			select {
			case events <- ev:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// routingEvent describes a routing socket message, or reports false for
// one that does not count: answers to queries, the routes the kernel
// clones for each neighbour, multicast memberships.
func routingEvent(m xroute.Message) (netEvent, bool) {
	switch m := m.(type) {
	case *xroute.InterfaceMessage:
		what := "link down"
		if m.Flags&unix.IFF_UP != 0 {
			what = "link up"
		}
		return netEvent{iface: ifaceName(m.Index, m.Name), what: what}, true
	case *xroute.InterfaceAddrMessage:
		what := "address added"
		if m.Type == unix.RTM_DELADDR {
			what = "address removed"
		}
		return netEvent{iface: ifaceName(m.Index, ""), what: what}, true
	case *xroute.RouteMessage:
		if m.Type != unix.RTM_ADD && m.Type != unix.RTM_DELETE && m.Type != unix.RTM_CHANGE {
			return netEvent{}, false
		}
		if m.Flags&(unix.RTF_WASCLONED|unix.RTF_LLINFO) != 0 {
			return netEvent{}, false
		}
		what := "route changed"
		switch m.Type {
		case unix.RTM_ADD:
			what = "route added"
		case unix.RTM_DELETE:
			what = "route removed"
		}
		return netEvent{iface: ifaceName(m.Index, ""), what: what}, true
	}
	return netEvent{}, false
}

// ifaceName is the name of interface index: name if the message carried
// it, else the system's.
func ifaceName(index int, name string) string {
	if name != "" {
		return name
	}
	if ifi, err := net.InterfaceByIndex(index); err == nil {
		return ifi.Name
	}
	return fmt.Sprintf("interface %d", index)
}
