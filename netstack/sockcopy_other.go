//go:build !linux

package netstack

import "net"

// pipeDirect copies without a user-space buffer only on Linux
// (sockcopy_linux.go); elsewhere ProxyCount always copies through one.
func (p *proxyRun) pipeDirect(dst, src net.Conn) (int64, bool) { return 0, false }
