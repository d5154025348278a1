package netstack

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// ErrClosed is returned by Read, Write and accept after the Stack is
// closed. It wraps os.ErrClosed, which is what wireguard-go checks for to
// tell a closed device from a failing one.
var ErrClosed = fmt.Errorf("netstack: %w", os.ErrClosed)

// errAccepted is returned by a second call to a flow's accept function.
var errAccepted = errors.New("accept already called for this flow")

// stackError is a gVisor tcpip.Error converted at the package boundary: it
// keeps gVisor's message and unwraps to the closest syscall.Errno, so
// callers can write errors.Is(err, syscall.ECONNREFUSED) and never see a
// gVisor type.
type stackError struct {
	msg   string
	errno syscall.Errno // 0 when gVisor's error has no errno equivalent
}

func (e *stackError) Error() string { return e.msg }

func (e *stackError) Unwrap() error {
	if e.errno == 0 {
		return nil
	}
	return e.errno
}

// convertErr converts a gVisor error into a Go error; nil stays nil.
func convertErr(err tcpip.Error) error {
	if err == nil {
		return nil
	}
	return &stackError{msg: err.String(), errno: errnoOf(err)}
}

// errnoOf maps the gVisor errors this package can meet to errnos. The
// mapping mirrors gVisor's own TranslateErrno in the other direction.
func errnoOf(err tcpip.Error) syscall.Errno {
	switch err.(type) {
	case *tcpip.ErrConnectionRefused:
		return syscall.ECONNREFUSED
	case *tcpip.ErrConnectionReset:
		return syscall.ECONNRESET
	case *tcpip.ErrConnectionAborted, *tcpip.ErrAborted:
		return syscall.ECONNABORTED
	case *tcpip.ErrTimeout:
		return syscall.ETIMEDOUT
	case *tcpip.ErrHostUnreachable, *tcpip.ErrHostDown:
		return syscall.EHOSTUNREACH
	case *tcpip.ErrNetworkUnreachable, *tcpip.ErrNoNet:
		return syscall.ENETUNREACH
	case *tcpip.ErrClosedForSend:
		return syscall.EPIPE
	case *tcpip.ErrNotConnected, *tcpip.ErrClosedForReceive:
		return syscall.ENOTCONN
	case *tcpip.ErrNoBufferSpace:
		return syscall.ENOBUFS
	case *tcpip.ErrPortInUse:
		return syscall.EADDRINUSE
	case *tcpip.ErrBadLocalAddress:
		return syscall.EADDRNOTAVAIL
	case *tcpip.ErrDuplicateAddress:
		return syscall.EEXIST
	case *tcpip.ErrMessageTooLong:
		return syscall.EMSGSIZE
	case *tcpip.ErrInvalidEndpointState, *tcpip.ErrInvalidOptionValue, *tcpip.ErrBadAddress:
		return syscall.EINVAL
	case *tcpip.ErrNotSupported, *tcpip.ErrUnknownProtocol:
		return syscall.EOPNOTSUPP
	case *tcpip.ErrWouldBlock:
		return syscall.EWOULDBLOCK
	default:
		return 0
	}
}
