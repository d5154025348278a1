package ctl

import (
	"errors"
	"fmt"
	"net"
)

// withSocket runs f on c's file descriptor, for reading the peer's
// credentials (peercred_*.go); errors say so.
func withSocket(c net.Conn, f func(fd int) error) error {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return errors.New("not a unix socket connection")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return fmt.Errorf("peer credentials: %w", err)
	}
	var ferr error
	if err := raw.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return fmt.Errorf("peer credentials: %w", err)
	}
	if ferr != nil {
		return fmt.Errorf("peer credentials: %w", ferr)
	}
	return nil
}
