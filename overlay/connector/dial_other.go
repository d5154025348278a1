//go:build !linux

package connector

import (
	"net"
	"time"
)

// newLANDialer is a plain net.Dialer outside Linux; dial_linux.go says why
// Linux picks the LAN side's ports itself.
func newLANDialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{Timeout: timeout}
}
