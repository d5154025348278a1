// Package coord is the coordinator's domain: it enrolls nodes with tokens,
// assigns overlay addresses, keeps routes and the split-tunnel policy, and
// serves every node's control stream, pushing a new netmap within a second
// of any change that affects it.
//
// State lives in a store.Store; coord keeps an immutable snapshot of it in
// memory, built anew after each write and swapped atomically, so readers
// never lock. Writes are serialised by one mutex.
//
// coord knows nothing of HTTP (package api adapts it) and must not import
// api, cmd, the other roles (client, connector) or the data plane
// (wireguard-go, gVisor, netlink, wgdev, netstack, platform).
package coord
