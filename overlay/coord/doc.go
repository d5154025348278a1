// Package coord is the coordinator's domain: it enrolls nodes with tokens
// (a client's token names its user), assigns overlay addresses, keeps
// routes, named hosts, split-DNS domains, the split-tunnel policy and the
// access-policy document, and serves every node's control stream, pushing
// a new netmap within a second of any change that affects it. The access
// policy is compiled (package policy) into each snapshot: every client's
// netmap carries its own grants, every connector's the grants of each
// client cut down to what that connector serves.
//
// State lives in a store.Store; coord keeps an immutable snapshot of it in
// memory, built anew after each write and swapped atomically, so readers
// never lock. Writes are serialised by one mutex.
//
// coord knows nothing of HTTP (package api adapts it) and must not import
// api, cmd, the other roles (client, connector) or the data plane
// (wireguard-go, gVisor, netlink, wgdev, netstack, platform).
package coord
