package ctl

import (
	"errors"
	"net"
)

// controlUnix runs f on the socket of c, which must be a unix socket
// connection, and returns f's error. The peerCred of each system asks its
// socket through it.
func controlUnix(c net.Conn, f func(fd uintptr) error) error {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return errors.New("not a unix socket connection")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := raw.Control(func(fd uintptr) { ferr = f(fd) }); err != nil {
		return err
	}
	return ferr
}
