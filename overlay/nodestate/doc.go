// Package nodestate owns a node's state directory: its identity (the
// WireGuard private key it generated, the node record and credential it got
// at enrollment, and the coordinator's URL and pin) and the last netmap it
// applied, kept so the data plane can start again while the coordinator is
// unreachable.
//
// Files are JSON, mode 0600 in a 0700 directory (an existing directory is
// tightened, and refused if another user owns it), replaced atomically (a
// temporary file in the same directory is written, synced and renamed over
// the old one, then the directory is synced), so a crash leaves either the
// old file or the new one, never a mix. Unknown fields are errors.
//
// nodestate does file I/O only: no network, no goroutines, no logging. It
// must not import wireguard-go, gVisor, netlink, the coordinator
// (overlay/coord and below) or coordclient. Besides the standard library it
// imports only overlay/wire.
package nodestate
