//go:build !linux && !darwin

package platform

import (
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"

	"golang.zx2c4.com/wireguard/tun"
)

// errUnsupported is what every operation returns here.
var errUnsupported = fmt.Errorf("platform: %w on %s", ErrNotSupported, runtime.GOOS)

// CreateTUN is not implemented on this system; it returns an error
// wrapping ErrNotSupported.
func CreateTUN(name string, mtu int) (tun.Device, error) { return nil, errUnsupported }

// NewRouter is not implemented on this system; it returns an error
// wrapping ErrNotSupported.
func NewRouter(log *slog.Logger) (Router, error) { return nil, errUnsupported }

// Cleanup is not implemented on this system; it returns an error wrapping
// ErrNotSupported.
func Cleanup(iface string) error { return errUnsupported }

// DefaultGateways is not implemented on this system; it returns an error
// wrapping ErrNotSupported.
func DefaultGateways() ([]netip.Addr, error) { return nil, errUnsupported }

// LocalPrefixes is not implemented on this system; it returns an error
// wrapping ErrNotSupported.
func LocalPrefixes(iface string) ([]netip.Prefix, error) { return nil, errUnsupported }

// TUNSupported reports whether this system has the TUN daemon's platform
// code: it has not; the error wraps ErrNotSupported.
func TUNSupported() error { return errUnsupported }
