// Package flowtrack is the laptop's stateful inbound filter: a tun.Device
// wrapper that sits between wireguard-go and the TUN, records every flow
// the laptop opens (packets read from the TUN, going into the tunnel) and
// lets a packet coming out of the tunnel reach the laptop only if it
// belongs to one of them: the reverse of a recorded TCP or UDP flow, an
// echo reply to a recorded echo request, or an ICMP error about a packet
// of a recorded flow. Everything else, a connection a connector tries to
// open to the laptop first of all, is dropped and counted. A compromised
// connector can answer the laptop but never reach its services.
//
// It owns no goroutine: idle flows are swept lazily by the reading
// goroutine. It is a mechanism: it must not import roles (overlay/client,
// connector, coord) or cmd, and depends only on wireguard-go's tun
// interface and the standard library.
package flowtrack
