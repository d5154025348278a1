// Package platform is the laptop daemon's OS integration: it creates the
// TUN device wireguard-go reads and writes (CreateTUN; its packets move
// through platform/tunio, which splits and merges runs of segments and
// leaves transport checksums to the kernel), and a Router gives
// that device its addresses and the kernel routes for exactly the prefixes
// the netmap says to tunnel. It also answers the two questions the client
// asks of the host's own network: its default gateways, which must never be
// tunnelled (DefaultGateways), and its directly connected prefixes, for the
// LAN-overlap warning (LocalPrefixes). WatchNetwork reports, debounced,
// when the host's network changes under the daemon (links, addresses and
// routes of every interface but the TUN: rtnetlink on Linux, the routing
// socket on darwin, nothing elsewhere), so that the client can follow it.
//
// Router.Set applies a Config as desired state: it re-reads what is
// installed, plans the difference (reconcile.go, OS-independent and tested
// without root) and applies it, adding before it deletes and keeping going
// past failures. What it owns is narrow so that it never disturbs anyone
// else's configuration: on Linux, the global addresses of the TUN device it
// is given, and the routes in the main table through that device marked
// with rtnetlink protocol RouteProtocol (87, shown as "proto 87"); on
// macOS, the global addresses of the utun device it is given, and the
// static routes through that device (its link address as the gateway)
// marked RTF_PROTO1 (flag "1" in netstat -rn). The mark is what lets
// Cleanup find a crashed run's routes, and what keeps Set from touching a
// route somebody else added to the same device.
//
// OS-specific code is split by build tags: *_linux.go holds the rtnetlink
// implementation (github.com/vishvananda/netlink) and
// golang.zx2c4.com/wireguard/tun; *_darwin.go holds only system calls:
// wireguard-go's utun, the routing-table dump (golang.org/x/net/route's
// FetchRIB), writes to a routing socket and the address ioctls. What the
// darwin Router sends and how it reads a dump is untagged (rtmsg.go: the
// rt_msghdr and sockaddr layouts; utun.go: the Router over a bsdKernel
// interface) so that it is tested on Linux against a fake kernel.
// router_other.go gives every other system (Windows) the same signatures,
// returning errors that wrap ErrNotSupported, and TUNSupported says so
// up front. Nothing switches on runtime.GOOS.
//
// platform is a mechanism. It reads no flags, environment or signals and
// starts no goroutines of its own, except inside WatchNetwork, which
// returns only once they have ended. It must not import any Warren package
// except routes (the pure prefix diff and ordering it reuses); roles
// (overlay/client) import it, never the reverse, and the connector, which
// needs no root, must not import it at all.
package platform
