//go:build !linux

package relay

import "net"

// Socket buffers; see sockbuf_linux.go.
const (
	nodeSocketBuffer  = 7 << 20
	relaySocketBuffer = 4 << 20
)

// growBuffers raises c's buffers as far as the system allows.
func growBuffers(c *net.UDPConn, size int) {
	c.SetReadBuffer(size)
	c.SetWriteBuffer(size)
}
