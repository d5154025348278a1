//go:build !linux

package relay

import "net"

// Segmentation offload is Linux-only; see offload_linux.go.
const (
	maxSegments = 64
	maxRunLen   = 1<<16 - 1 - 20 - 8
)

var offloadSpace = 0

func enableOffload(*net.UDPConn) (tx, rx bool) { return false, false }

func appendSegmentSize(oob []byte, _ int) []byte { return oob }

func segmentSize([]byte) int { return 0 }

func offloadRefused(error) bool { return false }
