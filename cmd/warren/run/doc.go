// Package run is warren's composition root: it turns the options parsed by
// package cli into running roles, wiring the concrete store, TLS, HTTP
// server, coordinator and (later) TUN, netlink, wireguard-go and gVisor.
// Nothing else in the tree builds these from flags.
package run
