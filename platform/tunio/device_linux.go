package tunio

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

// Offloads the device is asked for: checksums and TCP segmentation, and
// UDP segmentation (Linux 6.2) when the kernel has it.
const (
	tcpOffloads = unix.TUN_F_CSUM | unix.TUN_F_TSO4 | unix.TUN_F_TSO6
	udpOffloads = unix.TUN_F_USO4 | unix.TUN_F_USO6
)

// Device is a wireguard-go TUN device whose Read and Write go through
// tunio. Everything else (Name, MTU, Events, BatchSize, Close) is the
// wrapped device's. As for any tun.Device, one goroutine reads and one
// writes at a time; the mutexes only keep a second from corrupting state.
type Device struct {
	tun.Device
	file *os.File
	rc   syscall.RawConn

	readMu  sync.Mutex // guards readBuf
	readBuf []byte

	writeMu sync.Mutex // guards m
	m       merger
}

// Wrap returns dev with its Read and Write done by tunio when dev is a
// wireguard-go TUN device with virtio-net headers on, and dev itself when
// it is not (a kernel without IFF_VNET_HDR, or another kind of device).
func Wrap(dev tun.Device) (tun.Device, error) {
	nt, ok := dev.(interface{ File() *os.File })
	// wireguard-go batches exactly when the device has virtio-net headers.
	if !ok || dev.BatchSize() <= 1 {
		return dev, nil
	}
	d := &Device{Device: dev, file: nt.File(), readBuf: make([]byte, vnetHdrLen+maxPacket)}
	rc, err := d.file.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("tun device offloads: %w", err)
	}
	d.rc = rc
	var ioctlErr error
	err = rc.Control(func(fd uintptr) {
		// wireguard-go set the same; set again to learn whether UDP is in.
		if unix.IoctlSetInt(int(fd), unix.TUNSETOFFLOAD, tcpOffloads|udpOffloads) == nil {
			d.m.udp = true
			return
		}
		ioctlErr = unix.IoctlSetInt(int(fd), unix.TUNSETOFFLOAD, tcpOffloads)
	})
	if err = errors.Join(err, ioctlErr); err != nil {
		return nil, fmt.Errorf("tun device offloads: %w", err)
	}
	d.m.write = d.writev
	return d, nil
}

// Read reads one packet from the device, or one run the kernel left to be
// split, into bufs[i][offset:], and returns how many packets it gave. A run
// of more segments than bufs is dropped with tun.ErrTooManySegments, as
// wireguard-go's own device does.
func (d *Device) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	d.readMu.Lock()
	defer d.readMu.Unlock()
	for {
		n, err := d.file.Read(d.readBuf)
		if err != nil {
			if errors.Is(err, unix.EBADFD) {
				err = os.ErrClosed
			}
			return 0, err
		}
		n, err = split(d.readBuf[:n], bufs, sizes, offset)
		// A frame that makes no sense is dropped: wireguard-go would close
		// the whole device on any error it does not know.
		if !errors.Is(err, errMalformed) {
			return n, err
		}
	}
}

// Write writes the packets at bufs[i][offset:], merging runs; it may
// change the packets' headers and the vnetHdrLen bytes before offset,
// which wireguard-go leaves free. It returns len(bufs), or the first
// error after writing what it could.
func (d *Device) Write(bufs [][]byte, offset int) (int, error) {
	if offset < vnetHdrLen {
		return 0, fmt.Errorf("writing to the tun device: offset %d leaves no room for the %d-byte virtio-net header", offset, vnetHdrLen)
	}
	d.writeMu.Lock()
	defer d.writeMu.Unlock()
	if err := d.m.writePackets(bufs, offset); err != nil {
		return 0, err
	}
	return len(bufs), nil
}

// writev writes one packet, given in pieces, with one system call.
func (d *Device) writev(iov [][]byte) error {
	var werr error
	err := d.rc.Write(func(fd uintptr) bool {
		_, werr = unix.Writev(int(fd), iov)
		return werr != unix.EAGAIN
	})
	switch {
	case err != nil:
		return err
	case errors.Is(werr, unix.EBADFD):
		return os.ErrClosed
	case werr != nil:
		return fmt.Errorf("writing to the tun device: %w", werr)
	}
	return nil
}
