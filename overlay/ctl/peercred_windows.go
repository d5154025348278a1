package ctl

import (
	"fmt"
	"net"
	"os"
	"unsafe"

	"golang.org/x/sys/windows"
)

// sioAFUnixGetPeerPID is SIO_AF_UNIX_GETPEERPID (afunix.h,
// _WSAIOR(IOC_VENDOR, 256)): the process id Windows recorded for the
// connecting end of an AF_UNIX socket.
const sioAFUnixGetPeerPID = 0x58000100

// peerCredSupported: Windows reports the connecting process, whose user
// peerCred checks.
const peerCredSupported = true

// peerCred on Windows knows no uids: it asks the socket for the
// connecting process's id, opens that process's token and accepts the
// caller only when its user (SID) is the daemon's own, reporting it as the
// daemon's uid (so authorize allows it everything). Anyone else, and any
// step that fails, is refused: the operator (a uid) cannot be told apart
// here. The user is looked up when the connection is accepted, not
// recorded at connect(2) as on Linux and macOS: a caller that exited and
// whose process id another process of the daemon's user took in between
// would be taken for that process; the socket's directory, private to the
// user, is what keeps other users from connecting at all.
func peerCred(c net.Conn) (Caller, error) {
	var pid uint32
	err := controlUnix(c, func(fd uintptr) error {
		var n uint32
		err := windows.WSAIoctl(windows.Handle(fd), sioAFUnixGetPeerPID, nil, 0,
			(*byte)(unsafe.Pointer(&pid)), uint32(unsafe.Sizeof(pid)), &n, nil, 0)
		if err == nil && n != uint32(unsafe.Sizeof(pid)) {
			err = fmt.Errorf("the socket returned %d bytes", n)
		}
		return err
	})
	if err != nil {
		return Caller{}, fmt.Errorf("peer process id: %w", err)
	}
	same, err := sameUser(pid)
	if err != nil {
		return Caller{}, fmt.Errorf("peer credentials of process %d: %w", pid, err)
	}
	if !same {
		return Caller{}, fmt.Errorf("process %d belongs to another windows user", pid)
	}
	return Caller{UID: uint32(os.Geteuid()), GID: uint32(os.Getegid()), PID: int32(pid)}, nil
}

// sameUser reports whether process pid runs as this process's user.
func sameUser(pid uint32) (bool, error) {
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, pid)
	if err != nil {
		return false, fmt.Errorf("opening the process: %w", err)
	}
	defer windows.CloseHandle(h)
	var tok windows.Token
	if err := windows.OpenProcessToken(h, windows.TOKEN_QUERY, &tok); err != nil {
		return false, fmt.Errorf("opening its token: %w", err)
	}
	defer tok.Close()
	theirs, err := tok.GetTokenUser()
	if err != nil {
		return false, fmt.Errorf("reading its user: %w", err)
	}
	ours, err := windows.GetCurrentProcessToken().GetTokenUser()
	if err != nil {
		return false, fmt.Errorf("reading the daemon's user: %w", err)
	}
	return windows.EqualSid(theirs.User.Sid, ours.User.Sid), nil
}
