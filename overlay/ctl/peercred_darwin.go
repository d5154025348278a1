package ctl

import (
	"net"

	"golang.org/x/sys/unix"
)

// peerCredSupported: the kernel says who is calling.
const peerCredSupported = true

// peerCred returns the credentials of the process that connected c, which
// the kernel recorded at connect(2): LOCAL_PEERCRED's uid and first group,
// LOCAL_PEERPID's pid.
func peerCred(c net.Conn) (Caller, error) {
	var cred *unix.Xucred
	var pid int
	err := withSocket(c, func(fd int) (err error) {
		if cred, err = unix.GetsockoptXucred(fd, unix.SOL_LOCAL, unix.LOCAL_PEERCRED); err != nil {
			return err
		}
		pid, err = unix.GetsockoptInt(fd, unix.SOL_LOCAL, unix.LOCAL_PEERPID)
		return err
	})
	if err != nil {
		return Caller{}, err
	}
	out := Caller{UID: cred.Uid, PID: int32(pid)}
	if cred.Ngroups > 0 {
		out.GID = cred.Groups[0]
	}
	return out, nil
}
