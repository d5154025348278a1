package dataplane

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// The benchmark re-executes its own binary inside a namespace (under
// `ip netns exec`) to run a small network program there. The environment
// selects it; TestMain runs it instead of the tests.
const (
	modeEnv   = "WARREN_DATAPLANE_MODE"   // a child mode below or in extra_test.go
	addrEnv   = "WARREN_DATAPLANE_ADDR"   // echo: listen address; connect, rr: target
	countEnv  = "WARREN_DATAPLANE_COUNT"  // connect, rr: samples to take
	warmupEnv = "WARREN_DATAPLANE_WARMUP" // connect, rr: samples to take and drop first
)

// Child modes.
const (
	modeEcho    = "echo"    // TCP echo server; prints "listening" once it is
	modeConnect = "connect" // sequential TCP connects; prints samplesOut
	modeRR      = "rr"      // 1-byte request/response on one connection; prints samplesOut
)

// ioTimeout bounds each connect and each round trip of a child.
const ioTimeout = 3 * time.Second

func TestMain(m *testing.M) {
	if mode := os.Getenv(modeEnv); mode != "" {
		os.Exit(runMode(mode))
	}
	os.Exit(m.Run())
}

// samplesOut is what the connect and rr modes print, as one JSON object.
type samplesOut struct {
	// Samples are the durations in nanoseconds, in the order taken.
	Samples []int64 `json:"samples_ns"`
	// Failures counts attempts that failed; FirstError is the first.
	Failures   int    `json:"failures"`
	FirstError string `json:"first_error,omitempty"`
}

func runMode(mode string) int {
	addr := os.Getenv(addrEnv)
	var err error
	switch mode {
	case modeEcho:
		err = serveEcho(addr)
	case modeNaive:
		err = serveNaive()
	case modeUnreachable:
		err = json.NewEncoder(os.Stdout).Encode(unreachable(addr, os.Getenv(addr2Env)))
	case modeRate:
		err = json.NewEncoder(os.Stdout).Encode(connectRate(addr))
	case modeHold:
		var n int
		if n, err = strconv.Atoi(os.Getenv(countEnv)); err == nil {
			err = hold(addr, n)
		}
	case modeBulk, modeDownload, modeTTFB:
		err = runUserspaceMode(mode, addr)
	case modeConnect, modeRR, modeRefused:
		var n, warmup int
		if n, err = strconv.Atoi(os.Getenv(countEnv)); err != nil {
			break
		}
		if warmup, err = strconv.Atoi(os.Getenv(warmupEnv)); err != nil {
			break
		}
		var out samplesOut
		switch mode {
		case modeConnect, modeRefused:
			out = connectSamples(addr, n, warmup, mode == modeRefused)
		default:
			out = rrSamples(addr, n, warmup)
		}
		err = json.NewEncoder(os.Stdout).Encode(out)
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "dataplane %s: %v\n", mode, err)
		return 1
	}
	return 0
}

// serveEcho echoes every TCP connection on addr until it is killed.
func serveEcho(addr string) error { return serveTCP(addr, echo) }

// serveTCP listens on addr, prints "listening" and hands every connection
// to handle in a goroutine of its own until it is killed. Out of file
// descriptors, it waits and accepts again, as a server should.
func serveTCP(addr string, handle func(net.Conn)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", addr, err)
	}
	fmt.Println("listening")
	for {
		c, err := ln.Accept()
		if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if err != nil {
			return fmt.Errorf("accepting: %w", err)
		}
		go handle(c)
	}
}

// echo copies c to itself with a plain buffer. (io.Copy between two
// *net.TCPConn would splice through a pipe: two more descriptors per
// connection, which the 10,000 idle flows cannot afford.)
func echo(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 16<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// connectSamples times warmup+n sequential TCP connects to addr (until the
// three-way handshake completes at the dialer), closing each at once, and
// keeps the last n. With refused, addr is a closed port: it times each
// connect until it is refused instead, and counts one that is not refused
// (it succeeds, or fails otherwise) as a failure.
func connectSamples(addr string, n, warmup int, refused bool) samplesOut {
	return sampleN(n, warmup, func() (time.Duration, error) {
		t0 := time.Now()
		c, err := net.DialTimeout("tcp", addr, ioTimeout)
		d := time.Since(t0)
		if err == nil {
			c.Close()
			if refused {
				err = errors.New("connected to a port that should be closed")
			}
		} else if refused && errors.Is(err, syscall.ECONNREFUSED) {
			err = nil
		}
		return d, err
	})
}

// sampleN times warmup+n calls of one, in turn, and keeps the durations
// of the last n that succeeded; failures are counted, the first kept.
func sampleN(n, warmup int, one func() (time.Duration, error)) samplesOut {
	var out samplesOut
	for i := range warmup + n {
		d, err := one()
		if err != nil {
			out.Failures++
			if out.FirstError == "" {
				out.FirstError = err.Error()
			}
			continue
		}
		if i >= warmup {
			out.Samples = append(out.Samples, d.Nanoseconds())
		}
	}
	return out
}

// rrSamples opens one connection to an echo server at addr and times
// warmup+n round trips of one byte, keeping the last n. A failed round
// trip ends the run (the connection is no longer in step) and is counted
// as one failure.
func rrSamples(addr string, n, warmup int) samplesOut {
	var out samplesOut
	fail := func(err error) samplesOut {
		out.Failures++
		out.FirstError = err.Error()
		return out
	}
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		return fail(err)
	}
	defer c.Close()
	b := []byte{'x'}
	for i := range warmup + n {
		if err := c.SetDeadline(time.Now().Add(ioTimeout)); err != nil {
			return fail(err)
		}
		t0 := time.Now()
		if _, err := c.Write(b); err != nil {
			return fail(fmt.Errorf("round trip %d: %w", i, err))
		}
		if _, err := io.ReadFull(c, b); err != nil {
			return fail(fmt.Errorf("round trip %d: %w", i, err))
		}
		if d := time.Since(t0); i >= warmup {
			out.Samples = append(out.Samples, d.Nanoseconds())
		}
	}
	return out
}
