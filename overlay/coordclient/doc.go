// Package coordclient is the node side of the coordinator's HTTP API: Enroll
// exchanges a token for a node credential, Session holds a node's control
// stream open (receiving netmaps, acknowledging the versions it applied,
// reconnecting with backoff and jitter), Login enrolls a laptop by single
// sign-on instead (start a login, wait for the person to finish it),
// NodeClient makes a node's other calls (a connector's flow reports, a
// client's logout and SSH certificates), and Admin calls the admin
// endpoints on behalf of the CLI.
//
// It owns the transport to the coordinator: certificate pinning (a token's
// Pin is the SHA-256 of the coordinator's leaf certificate), timeouts, and
// turning transport failures and wire.Error bodies into one-line errors fit
// to show a person as is. It never logs secrets (token secrets, node
// credentials).
//
// coordclient depends only on the standard library and overlay/wire. It must
// not import wireguard-go, gVisor, netlink, the coordinator (overlay/coord
// and below) or any role package; what a node does with a netmap belongs to
// the SessionConfig.Apply callback its owner passes in.
//
// Its tests run against the real coordinator (test/coordtest) behind
// coordtest.Faults, which injects failed answers and dropped, cut, silent
// or corrupted streams; they are an external test package, so the
// coordinator never becomes a dependency of this one.
package coordclient
