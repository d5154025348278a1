package relay

import (
	"net"

	"golang.org/x/sys/unix"
)

// Socket buffers. The kernel default (about 208 KiB) overflows under a
// single TCP flow's bursts. A node's socket carries only its own traffic,
// so it asks for as much as stock wireguard-go does. The relay's one
// socket is shared by every node: a deep buffer there would let one
// flooding node queue seconds of datagrams ahead of everyone else's, so
// it asks for less: 4 MiB, about 13 ms at 2.5 Gbit/s. (2 MiB dropped
// 7-69 datagrams a run of the bench's relay-path download, GRO runs
// from the connector arriving while the read loop waited for its write
// queue; gVisor, the sender, took each for congestion.)
const (
	nodeSocketBuffer  = 7 << 20
	relaySocketBuffer = 4 << 20
)

// growBuffers raises c's buffers to size: past net.core.rmem_max
// where the process may (CAP_NET_ADMIN), else as far as the limit allows.
// Failure is not an error: the socket works with smaller buffers.
func growBuffers(c *net.UDPConn, size int) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size) != nil {
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, size)
		}
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, size) != nil {
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, size)
		}
	})
}
