//go:build !linux && !darwin

package ctl

import (
	"errors"
	"net"
)

// peerCred returns the credentials of the process that connected c. Only
// Linux reports them here, so elsewhere every request is refused.
func peerCred(net.Conn) (Caller, error) {
	return Caller{}, errors.New("peer credentials are not supported on this system")
}
