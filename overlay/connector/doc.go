// Package connector is the site connector: it serves the prefixes the
// coordinator routes to it by terminating tunnel traffic in a userspace
// TCP/IP stack (netstack) and opening real sockets to the LAN hosts. It
// needs no root, no TUN device and no IP forwarding, and it only ever
// dials out: to the coordinator, the relay and the LAN.
//
// Admission (admit.go): a flow is served only if it comes from an
// enrolled client (WireGuard has already checked the source against the
// peer's overlay address), goes to an address the destination guard lets
// through (routes.NeverServed: never loopback, link-local, multicast,
// unspecified, 0.0.0.0/8, broadcast, the overlay range or another
// special-purpose range, nor their IPv4-mapped, IPv4-compatible, NAT64,
// 6to4 or Teredo forms; guard.go: nor the connector host's own addresses),
// inside a prefix this connector serves, and, when the
// netmap says a policy is enforced, allowed by one of the client's grants.
// Nothing refused reaches a LAN dial or a ping: TCP gets a RST, UDP and
// echo requests ICMP administratively prohibited.
//
// Live flows (live.go): every served TCP and UDP flow is registered with
// its client, rule and byte counters until it ends; each netmap applied
// re-decides them all and cuts those no longer allowed before apply
// returns. Every flow becomes a wire.FlowRecord (records.go): allowed ones
// when they end, denials at once (one per source, destination and
// protocol a second), kept and shipped by overlay/flowlog under Run.
//
// A route with AllowConnectorHost lets its flows reach the connector
// host's own addresses (the guard's table still applies). A route with
// ProxyProtocol gets a PROXY v2 header on each TCP flow
// (proxyproto.go).
//
// connector is a role: it must not import platform, netlink, other roles
// or cmd.
package connector
