package ctl

import (
	"errors"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// xucredVersion is XUCRED_VERSION (<sys/ucred.h>), which x/sys/unix lacks.
const xucredVersion = 0

// peerCred returns the credentials of the process that connected c, which
// the kernel recorded at connect(2): LOCAL_PEERCRED (the effective uid and
// groups) and LOCAL_PEERPID.
func peerCred(c net.Conn) (Caller, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return Caller{}, errors.New("not a unix socket connection")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return Caller{}, fmt.Errorf("peer credentials: %w", err)
	}
	var cred *unix.Xucred
	var pid int
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptXucred(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
		if serr == nil {
			pid, serr = unix.GetsockoptInt(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERPID)
		}
	}); err != nil {
		return Caller{}, fmt.Errorf("peer credentials: %w", err)
	}
	if serr != nil {
		return Caller{}, fmt.Errorf("peer credentials: %w", serr)
	}
	if cred.Version != xucredVersion || cred.Ngroups < 1 {
		return Caller{}, fmt.Errorf("peer credentials: unexpected xucred version %d with %d groups", cred.Version, cred.Ngroups)
	}
	return Caller{UID: cred.Uid, GID: cred.Groups[0], PID: int32(pid)}, nil
}
