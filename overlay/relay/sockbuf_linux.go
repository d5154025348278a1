package relay

import (
	"net"

	"golang.org/x/sys/unix"
)

// socketBuffer is the send and receive buffer the relay's sockets ask
// for: as much as stock wireguard-go asks for. The kernel default (about
// 208 KiB) overflows under a single TCP flow's bursts.
const socketBuffer = 7 << 20

// growBuffers raises c's buffers to socketBuffer: past net.core.rmem_max
// where the process may (CAP_NET_ADMIN), else as far as the limit allows.
// Failure is not an error: the socket works with smaller buffers.
func growBuffers(c *net.UDPConn) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, socketBuffer) != nil {
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, socketBuffer)
		}
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, socketBuffer) != nil {
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, socketBuffer)
		}
	})
}
