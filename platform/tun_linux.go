//go:build linux

package platform

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

// CreateTUN creates the named TUN device with the MTU, for wireguard-go,
// or attaches to it when a persistent TUN device of that name exists. The
// device lives as long as the returned tun.Device: closing it removes the
// interface and, with it, every address and route on it. It fails when the
// name is taken by another kind of device or by a TUN device another
// process holds.
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
	return dev, nil
}
