//go:build linux

package platform

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/warrennet/warren/platform/tunio"
)

// tunQueueLen is the TUN device's transmit queue, in packets: what the
// kernel holds for the daemon to read. The tun driver's default of 500
// overflowed under bursts: a 500 Mbit/s stream of 1,200-byte UDP
// datagrams lost 0.4-3.9 % in the demo lab, most of it dropped at the
// TUN while the daemon was briefly behind; with 1,000, as Linux gives an
// Ethernet device, 0.2-2.9 % (1.0 % against 1.9 % on average). A TCP
// upload keeps no more there (its own limit, TCP small queues, holds),
// and its round trips during the upload did not change.
const tunQueueLen = 1000

// CreateTUN creates the named TUN device with the MTU, for wireguard-go,
// or attaches to it when a persistent TUN device of that name exists. The
// device lives as long as the returned tun.Device: closing it removes the
// interface and, with it, every address and route on it. It fails when the
// name is taken by another kind of device or by a TUN device another
// process holds. Its packets move through tunio: runs of segments in one
// system call, transport checksums left to the kernel (see tunio).
func CreateTUN(name string, mtu int) (tun.Device, error) {
	if err := checkInterfaceName(name); err != nil {
		return nil, err
	}
	if mtu < minMTU || mtu > maxMTU {
		return nil, invalidf("mtu %d is outside %d-%d", mtu, minMTU, maxMTU)
	}
	dev, err := tun.CreateTUN(name, mtu)
	switch {
	case errors.Is(err, unix.EBUSY):
		return nil, fmt.Errorf("creating tun device %s: in use by another process: %w", name, err)
	case errors.Is(err, unix.EINVAL):
		return nil, fmt.Errorf("creating tun device %s (is the name taken by a device that is not a tun device?): %w", name, err)
	case err != nil:
		return nil, fmt.Errorf("creating tun device %s: %w", name, err)
	}
	link, err := netlink.LinkByName(name)
	if err == nil {
		err = netlink.LinkSetTxQLen(link, tunQueueLen)
	}
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("setting the queue length of tun device %s: %w", name, err)
	}
	wrapped, err := tunio.Wrap(dev)
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("creating tun device %s: %w", name, err)
	}
	return wrapped, nil
}

// TUNSupported reports whether this system has the TUN daemon's platform
// code (CreateTUN, NewRouter): nil here.
func TUNSupported() error { return nil }
