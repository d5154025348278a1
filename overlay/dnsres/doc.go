// Package dnsres is the laptop daemon's DNS resolver: it answers the
// netmap's host names (NAME and NAME.SUFFIX, A and AAAA, PTR for their
// addresses, NXDOMAIN for other names under the suffix), forwards the
// pushed domains (longest suffix wins, on label boundaries) to their servers
// through a Dialer its consumer passes in (the tunnel), and everything else
// to the system's previous resolvers over the normal network.
//
// It owns the decision of where a name goes (Route, pure over the current
// snapshot) and the forwarding; the configuration is an immutable snapshot
// swapped atomically by Set. It does not listen (its consumer runs a
// dns.Server with the Resolver as its Handler) and does not touch the
// system's DNS configuration. It is a mechanism: it must not import the
// roles (overlay/client, overlay/connector, overlay/coord).
package dnsres
