// Package relay owns Warren's relay: the fallback path that carries
// WireGuard datagrams between enrolled nodes that cannot reach each other.
// The relay forwards opaque, already-encrypted datagrams; it never holds a
// WireGuard key and never sees plaintext.
//
// It has four parts:
//
//   - Credentials (credential.go): the coordinator issues each node an
//     identity-bound credential (node ID, public key, role, expiry) MACed
//     with a key it shares with the relay; the relay verifies it without a
//     database. The node proves it holds its credential in every HELLO
//     without sending the secret part.
//   - The frame format (wire.go), documented in docs/PROTOCOL.md: HELLO,
//     HELLO-ACK, DATA and ERROR frames over UDP, parsed strictly.
//   - Server (server.go: configuration, lifecycle, counters, the read
//     loop; server_hello.go: HELLOs; server_forward.go: DATA;
//     server_write.go: the write loop): learns each node's address from
//     verified HELLOs, forwards DATA only from registered addresses to
//     registered keys the policy allows, through bounded per-node queues,
//     and counts every drop.
//   - Bind (bind.go: configuration, lifecycle, endpoints; bind_send.go,
//     bind_recv.go: the data path; bind_hello.go: keepalive HELLOs;
//     direct.go, disco.go: the direct path): the node side, a
//     golang.zx2c4.com/wireguard/conn.Bind whose peers are named
//     "relay:<base64 public key>".
//
// relay is a mechanism. The policy (who may talk to whom) is a function the
// caller passes in; the coordinator computes it. relay must not import the
// roles (overlay/coord, overlay/client, overlay/connector), cmd, gVisor,
// netlink or platform; among Warren packages it imports only overlay/wire.
package relay
