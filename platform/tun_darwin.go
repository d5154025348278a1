package platform

import (
	"fmt"

	"golang.zx2c4.com/wireguard/tun"
)

// CreateTUN creates a utun device with the MTU, for wireguard-go. macOS
// names every such device utunN: name utunN asks for that one, and any
// other name (the default warren0) lets the kernel pick a free one. The
// device's Name is the name it got, which is what Config.Interface must
// then say. The device lives as long as the returned tun.Device: closing
// it, or the process ending, removes the interface and every address and
// route on it.
func CreateTUN(name string, mtu int) (tun.Device, error) {
	if err := checkInterfaceName(name); err != nil {
		return nil, err
	}
	if mtu < minMTU || mtu > maxMTU {
		return nil, invalidf("mtu %d is outside %d-%d", mtu, minMTU, maxMTU)
	}
	dev, err := tun.CreateTUN(utunName(name), mtu)
	if err != nil {
		return nil, fmt.Errorf("creating tun device %s: %w", utunName(name), err)
	}
	return dev, nil
}

// TUNSupported reports whether this system has the TUN daemon's platform
// code (CreateTUN, NewRouter): nil here.
func TUNSupported() error { return nil }
