//go:build !linux && !darwin && !windows

package ctl

import (
	"errors"
	"net"
)

// peerCredSupported: this system does not say who is calling; the cookie
// (cookie.go) proves the daemon's own user instead.
const peerCredSupported = false

// peerCred returns the credentials of the process that connected c. Only
// Linux and macOS report them; elsewhere a request is authorised by the
// cookie only (cookie.go), as the daemon's own user's.
func peerCred(net.Conn) (Caller, error) {
	return Caller{}, errors.New("peer credentials are not supported on this system")
}
