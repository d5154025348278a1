//go:build !linux && !darwin

package ctl

import (
	"errors"
	"net"
)

// peerCredSupported: the kernel says who is calling.
const peerCredSupported = false

// peerCred returns the credentials of the process that connected c. Only
// Linux and macOS report them; elsewhere a request is authorised by the
// cookie only (cookie.go), as the daemon's own user's.
func peerCred(net.Conn) (Caller, error) {
	return Caller{}, errors.New("peer credentials are not supported on this system")
}
