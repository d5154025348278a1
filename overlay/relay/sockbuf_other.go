//go:build !linux

package relay

import "net"

// socketBuffer is the send and receive buffer the relay's sockets ask for.
const socketBuffer = 7 << 20

// growBuffers raises c's buffers as far as the system allows.
func growBuffers(c *net.UDPConn) {
	c.SetReadBuffer(socketBuffer)
	c.SetWriteBuffer(socketBuffer)
}
