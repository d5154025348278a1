package platform

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	xroute "golang.org/x/net/route"
	"golang.org/x/sys/unix"
)

// NewRouter returns a Router that manages addresses through ioctls and
// routes through the routing socket. It installs nothing until Set. A nil
// log discards.
func NewRouter(log *slog.Logger) (Router, error) {
	return newRouter(newBSDRouter(log, sysKernel{})), nil
}

// Cleanup removes what a previous run that did not Close left on the named
// interface: the routes through it marked as Warren's. macOS destroys a
// utun, and every route through it, when the process that opened it
// exits, so an interface of that name that exists now is another
// process's: Cleanup never touches its addresses. A name that is not a
// utun's (the default warren0) names nothing and is clean.
func Cleanup(iface string) error {
	if err := checkInterfaceName(iface); err != nil {
		return err
	}
	if !isUtun(iface) {
		return nil
	}
	return newBSDRouter(nil, sysKernel{}).clearLink(iface, false)
}

// sysKernel is bsdKernel through system calls. Every call opens the
// socket it needs and closes it: the Router sends a handful of messages
// per Set, and a routing socket kept open would fill with the kernel's
// copies of every routing message on the system.
type sysKernel struct{}

func (sysKernel) link(name string) (bsdLink, error) {
	ifi, err := interfaceByName(name)
	if err != nil {
		return bsdLink{}, err
	}
	return bsdLink{Index: ifi.Index, MTU: ifi.MTU, Up: ifi.Flags&net.FlagUp != 0}, nil
}

// interfaceByName is net.InterfaceByName with a missing interface told
// apart (errNoLink).
func interfaceByName(name string) (*net.Interface, error) {
	ifis, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("listing interfaces: %w", err)
	}
	for i := range ifis {
		if ifis[i].Name == name {
			return &ifis[i], nil
		}
	}
	return nil, fmt.Errorf("%w: %s", errNoLink, name)
}

func (sysKernel) addrs(name string) ([]netip.Prefix, error) {
	ifi, err := interfaceByName(name)
	if err != nil {
		return nil, err
	}
	return interfacePrefixes(ifi)
}

// interfacePrefixes returns the interface's addresses with their prefix
// lengths; IPv6 ones without a zone.
func interfacePrefixes(ifi *net.Interface) ([]netip.Prefix, error) {
	as, err := ifi.Addrs()
	if err != nil {
		return nil, err
	}
	var ps []netip.Prefix
	for _, a := range as {
		n, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		if p, ok := prefixOf(n); ok {
			ps = append(ps, p)
		}
	}
	return ps, nil
}

func (sysKernel) setMTU(name string, mtu int) error {
	return withSocket(unix.AF_INET, func(fd int) error {
		ifr := &unix.IfreqMTU{MTU: int32(mtu)}
		copy(ifr.Name[:], name)
		return unix.IoctlSetIfreqMTU(fd, ifr)
	})
}

func (sysKernel) setUp(name string) error {
	return withSocket(unix.AF_INET, func(fd int) error {
		var ifr [32]byte // struct ifreq: the name, then ifr_flags (short)
		copy(ifr[:ifNameSize], name)
		if err := ioctl(fd, unix.SIOCGIFFLAGS, ifr[:]); err != nil {
			return err
		}
		*(*uint16)(unsafe.Pointer(&ifr[ifNameSize])) |= unix.IFF_UP
		return ioctl(fd, unix.SIOCSIFFLAGS, ifr[:])
	})
}

func (sysKernel) rib() ([]byte, error) {
	return xroute.FetchRIB(unix.AF_UNSPEC, xroute.RIBTypeRoute, 0)
}

func (sysKernel) route(msg []byte) error {
	fd, err := socket(unix.AF_ROUTE, unix.SOCK_RAW, unix.AF_UNSPEC)
	if err != nil {
		return fmt.Errorf("opening a routing socket: %w", err)
	}
	defer unix.Close(fd)
	// Only writes: no copies of the system's routing messages queue up.
	_ = unix.Shutdown(fd, unix.SHUT_RD)
	n, err := unix.Write(fd, msg)
	if err != nil {
		return err
	}
	if n != len(msg) {
		return fmt.Errorf("routing socket took %d of %d bytes", n, len(msg))
	}
	return nil
}

func (sysKernel) ioctl(family int, req uint32, arg []byte) error {
	return withSocket(family, func(fd int) error { return ioctl(fd, uint(req), arg) })
}

// withSocket runs f on a new datagram socket of the family.
func withSocket(family int, f func(fd int) error) error {
	fd, err := socket(family, unix.SOCK_DGRAM, 0)
	if err != nil {
		return fmt.Errorf("opening a socket for interface ioctls: %w", err)
	}
	defer unix.Close(fd)
	return f(fd)
}

// ioctl performs req with arg, a request whose size req encodes.
func ioctl(fd int, req uint, arg []byte) error {
	if size := int(req>>16) & 0x1fff; size != len(arg) {
		return fmt.Errorf("ioctl %#x takes %d bytes, not %d", req, size, len(arg))
	}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(unsafe.Pointer(&arg[0])))
	if errno != 0 {
		return errno
	}
	return nil
}

// socket opens a socket that a program the daemon started would not
// inherit (macOS has no SOCK_CLOEXEC).
func socket(family, typ, proto int) (int, error) {
	syscall.ForkLock.RLock()
	defer syscall.ForkLock.RUnlock()
	fd, err := unix.Socket(family, typ, proto)
	if err != nil {
		return -1, err
	}
	unix.CloseOnExec(fd)
	return fd, nil
}
