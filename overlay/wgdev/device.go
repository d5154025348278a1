package wgdev

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
)

// ErrClosed is returned by Apply and Stats after Close.
var ErrClosed = errors.New("wireguard device closed")

// uapi is the part of *device.Device that Apply and Stats use: wireguard-go's
// configuration protocol. Tests substitute a recorder.
type uapi interface {
	// IpcSet applies a "set" operation, line by line; on error the lines
	// before the failing one have taken effect.
	IpcSet(config string) error
	// IpcGet returns the text of a "get" operation.
	IpcGet() (string, error)
}

// Device is a running wireguard-go device and the configuration last
// applied to it. Its methods are safe for concurrent use.
type Device struct {
	log  *slog.Logger
	dev  *device.Device // nil only in tests that use a fake uapi
	uapi uapi

	// applyMu serializes Apply: the diff against applied and the device
	// change together, so it is held across IpcSet. Nothing called under it
	// calls back into Device.
	applyMu sync.Mutex
	applied *Config // guarded by applyMu; normalized; nil: unknown, apply everything

	closed    atomic.Bool
	closeOnce sync.Once
}

// New creates a wireguard-go device over tunDev and bind and brings it up,
// with no key and no peers until the first Apply. The Device owns both from
// then on: Close closes them, and so does New if it fails. log may be nil.
// The device stops reading bind while maxInflight data datagrams wait for
// tunDev, and tunDev while maxInflight packets wait for bind (see
// inflight.go).
func New(tunDev tun.Device, bind conn.Bind, log *slog.Logger) (*Device, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	in, out := newInflight(), newInflight()
	dev := device.NewDevice(inflightTUN{tunDev, in, out}, inflightBind{bind, in, out}, newLogger(log))
	if err := dev.Up(); err != nil {
		dev.Close()
		return nil, fmt.Errorf("bringing wireguard device up: %w", err)
	}
	return &Device{log: log, dev: dev, uapi: dev}, nil
}

// Apply makes cfg the device's configuration. It is idempotent and works
// by diff against the configuration applied last (see Config and Peer for
// what each change does): a peer whose configuration did not change is not
// touched and keeps its session, and applying the same configuration again
// does nothing. A change of private key reconfigures the device fully.
//
// An invalid cfg is rejected (the error wraps ErrInvalidConfig) and changes
// nothing. If the device rejects the change part way, Apply reads back what
// the device holds, so the next Apply diffs against that, and returns the
// error.
func (d *Device) Apply(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	want := normalize(cfg)

	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	if d.closed.Load() {
		return ErrClosed
	}
	text, ch := render(d.applied, want)
	if text == "" {
		return nil
	}
	if err := d.uapi.IpcSet(text); err != nil {
		d.applied = d.readBack()
		if d.closed.Load() {
			return ErrClosed
		}
		return fmt.Errorf("configuring wireguard device: %w", err)
	}
	d.applied = &want
	d.log.Debug("wireguard configured", "full", ch.full, "added", ch.added, "updated", ch.updated, "removed", ch.removed, "peers", len(want.Peers))
	return nil
}

// readBack returns the configuration the device holds, or nil if it
// cannot be read.
func (d *Device) readBack() *Config {
	st, err := d.state()
	if err != nil {
		d.log.Warn("reading wireguard device state back", "err", err)
		return nil
	}
	c := st.config()
	return &c
}

// state reads the device's state.
func (d *Device) state() (deviceState, error) {
	text, err := d.uapi.IpcGet()
	if err != nil {
		return deviceState{}, fmt.Errorf("reading wireguard device state: %w", err)
	}
	return parseGet(text)
}

// Stats reports every peer the device has, ordered by public key.
func (d *Device) Stats() ([]PeerStats, error) {
	if d.closed.Load() {
		return nil, ErrClosed
	}
	st, err := d.state()
	if err != nil {
		return nil, err
	}
	sortStats(st.peers)
	return st.peers, nil
}

// Handshake starts a handshake now with every peer whose last one
// completed more than olderThan ago, rather than at the next datagram
// wireguard-go sends it: after the host's network changed or the process
// was frozen (a suspend), so that a session that aged meanwhile is
// renewed before traffic waits for it. Peers that never completed a
// handshake are left to wireguard-go. wireguard-go sends at most one
// initiation per peer per REKEY_TIMEOUT (5 s) whatever Handshake asks.
// It returns how many peers it asked.
func (d *Device) Handshake(olderThan time.Duration) (int, error) {
	stats, err := d.Stats()
	if err != nil || d.dev == nil {
		return 0, err
	}
	n := 0
	for _, st := range stats {
		if st.LastHandshake.IsZero() || time.Since(st.LastHandshake) <= olderThan {
			continue
		}
		if p := d.dev.LookupPeer(device.NoisePublicKey(st.PublicKey)); p != nil {
			p.SendHandshakeInitiation(false)
			n++
		}
	}
	return n, nil
}

// Close closes the device: it removes every peer and closes the TUN device
// and the Bind, waiting for the goroutines that read them. A few of
// wireguard-go's workers (crypto workers, the TUN event reader) finish
// shortly after Close returns; wireguard-go offers no way to wait for them,
// and they touch nothing of the caller's. Close is idempotent and returns
// nil; Apply and Stats return ErrClosed afterwards.
func (d *Device) Close() error {
	d.closeOnce.Do(func() {
		d.closed.Store(true)
		if d.dev != nil {
			d.dev.Close()
		}
	})
	return nil
}
