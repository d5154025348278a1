// Package connector is the site connector: it serves the prefixes the
// coordinator routes to it by terminating tunnel traffic in a userspace
// TCP/IP stack (netstack) and opening real sockets to the LAN hosts. It
// needs no root, no TUN device and no IP forwarding, and it only ever
// dials out: to the coordinator, the relay and the LAN.
//
// Admission: a flow is served only if it comes from an enrolled client
// (WireGuard has already checked the source against the peer's overlay
// address) and goes to an address inside a prefix this connector serves,
// never to the connector's own loopback or link-local addresses.
//
// connector is a role: it must not import platform, netlink, other roles
// or cmd.
package connector
