package ctl

import (
	"net"

	"golang.org/x/sys/unix"
)

// peerCredSupported: the kernel says who is calling.
const peerCredSupported = true

// peerCred returns the credentials of the process that connected c, which
// the kernel recorded at connect(2).
func peerCred(c net.Conn) (Caller, error) {
	var cred *unix.Ucred
	err := withSocket(c, func(fd int) (err error) {
		cred, err = unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
		return err
	})
	if err != nil {
		return Caller{}, err
	}
	return Caller{UID: cred.Uid, GID: cred.Gid, PID: cred.Pid}, nil
}
