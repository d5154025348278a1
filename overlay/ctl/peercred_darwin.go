package ctl

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// peerCredSupported: the kernel says who is calling.
const peerCredSupported = true

// xucredVersion is XUCRED_VERSION (<sys/ucred.h>), which x/sys/unix lacks.
const xucredVersion = 0

// peerCred returns the credentials of the process that connected c, which
// the kernel recorded at connect(2): LOCAL_PEERCRED (the effective uid and
// groups) and LOCAL_PEERPID.
func peerCred(c net.Conn) (Caller, error) {
	var cred *unix.Xucred
	var pid int
	err := controlUnix(c, func(fd uintptr) (err error) {
		if cred, err = unix.GetsockoptXucred(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERCRED); err != nil {
			return err
		}
		pid, err = unix.GetsockoptInt(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERPID)
		return err
	})
	if err != nil {
		return Caller{}, fmt.Errorf("peer credentials: %w", err)
	}
	if cred.Version != xucredVersion || cred.Ngroups < 1 {
		return Caller{}, fmt.Errorf("peer credentials: unexpected xucred version %d with %d groups", cred.Version, cred.Ngroups)
	}
	return Caller{UID: cred.Uid, GID: cred.Groups[0], PID: int32(pid)}, nil
}
