package ctl

import (
	"errors"
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// peerCred returns the credentials of the process that connected c, which
// the kernel recorded at connect(2): LOCAL_PEERCRED's uid and first group,
// LOCAL_PEERPID's pid.
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
	c0 := Caller{UID: cred.Uid, PID: int32(pid)}
	if cred.Ngroups > 0 {
		c0.GID = cred.Groups[0]
	}
	return c0, nil
}
