// Package tunio reads and writes the laptop's Linux TUN device with
// virtio-net headers (IFF_VNET_HDR), so that one system call moves a whole
// run of TCP segments or UDP datagrams: on Read it splits what the kernel
// hands over as one large packet (TSO, USO) into segments of the tunnel's
// MTU, and on Write it merges consecutive segments of a flow into one
// packet the kernel takes whole (the TUN's GRO side).
//
// It does this as wireguard-go's tun package does, with one difference:
// it leaves the TCP and UDP checksums of the packets inside the tunnel
// alone. WireGuard's AEAD already authenticates every byte a peer sent,
// so inside a Warren tunnel the transport checksum is left to the end that
// hands a packet to a kernel:
//
//   - Read does not compute the checksums of the segments it splits (nor of
//     a single TCP or UDP packet the kernel left for offload): the peers
//     are connectors, whose gVisor stack takes tunnel packets as checked
//     (netstack's link), and every other receiver follows the next rule.
//   - Write does not check the checksums of what it merges, and hands
//     every TCP and UDP packet to the kernel as needing a checksum
//     (VIRTIO_NET_HDR_F_NEEDS_CSUM, with the pseudo-header sum in the
//     checksum field): the kernel takes such a packet as checked when it is
//     for this host, and fills in its checksum if it forwards it.
//
// wireguard-go computes every segment's checksum on Read and checks every
// packet's on Write; on this 2-core lab that was 8 % of the daemon's CPU in
// an upload and 4 % in a download (docs/PERFORMANCE.md). The kernel's
// WireGuard does the second half of the same thing: it marks what it
// decrypts as checked (CHECKSUM_UNNECESSARY).
//
// Packets that are neither TCP nor UDP, IP fragments, and IPv6 packets
// with extension headers are passed as they are, checksums and all.
//
// tunio is a mechanism beneath platform: it imports no Warren package,
// starts no goroutines and reads no configuration. Wrap adds it to a
// wireguard-go TUN device; everything but Read, Write and BatchSize stays
// that device's.
package tunio
