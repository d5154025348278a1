//go:build !linux

package netstack

import (
	"net"
	"sync/atomic"
)

// pipeDirect copies without a user-space buffer only on Linux
// (sockcopy_linux.go); elsewhere ProxyCount always copies through one.
func (p *proxyRun) pipeDirect(dst, src net.Conn, n *atomic.Int64) bool { return false }
