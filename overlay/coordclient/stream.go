package coordclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrennet/warren/overlay/wire"
)

// maxMessage bounds one line of the control stream.
const maxMessage = 16 << 20

var (
	// errStreamClosed ends the request body when the stream is torn down.
	errStreamClosed = errors.New("control stream closed")
	// errNoHeaders cancels a stream request left unanswered.
	errNoHeaders = errors.New("no response headers in time")
)

// stream opens one control stream and serves it until it fails or ctx
// ends. up is when the stream was established (zero if it never was).
//
// Goroutines, all stopped and waited for before stream returns:
//   - readLoop reads the response body and never blocks on anything else;
//   - writeLoop writes pings and acks into the request body;
//   - the caller's goroutine runs serve: it applies netmaps and watches
//     for silence.
//
// Shutdown order: cancel the request, which unblocks reads of the response
// and, through an AfterFunc, closes both ends of the pipe (unblocking the
// transport's reads of the request body and writeLoop's writes); close
// the response body; wait for the loops and the AfterFuncs.
func (s *Session) stream(ctx context.Context, hc *http.Client, applyLog *rateLimiter) (up time.Time, err error) {
	sctx, cancel := context.WithCancelCause(ctx)
	pr, pw := io.Pipe()
	// aux counts the two helpers below, which run on their own goroutines
	// when triggered; they are waited for like the loops.
	var aux sync.WaitGroup
	defer aux.Wait()
	defer cancel(errStreamClosed)
	// The transport may block reading the request body even after the
	// request failed (HTTP/1.1 waits for its write loop); ending sctx must
	// unblock it.
	aux.Add(1)
	context.AfterFunc(sctx, func() {
		defer aux.Done()
		pr.CloseWithError(errStreamClosed)
		pw.CloseWithError(errStreamClosed)
	})

	req, err := http.NewRequestWithContext(sctx, http.MethodPost, s.base+wire.PathStream, pr)
	if err != nil {
		return up, fmt.Errorf("building the stream request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+s.cfg.Credential)
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Accept", "application/x-ndjson")

	// Bound the wait for response headers. The transport's
	// ResponseHeaderTimeout does not cover HTTP/1.1 here: its clock starts
	// only once the request body is fully written, which never happens.
	aux.Add(1)
	headers := time.AfterFunc(s.cfg.HeartbeatTimeout, func() {
		defer aux.Done()
		cancel(errNoHeaders)
	})
	resp, err := hc.Do(req)
	if headers.Stop() {
		aux.Done()
	}
	noAnswer := func(err error) error {
		return &reachError{url: s.base, cause: fmt.Sprintf("no answer within %v", s.cfg.HeartbeatTimeout), err: err}
	}
	if err != nil {
		if ctx.Err() != nil {
			return up, ctx.Err()
		}
		if errors.Is(context.Cause(sctx), errNoHeaders) {
			return up, noAnswer(err)
		}
		return up, transportError(s.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// A refusal is an answer even if it came as the timer fired.
		err := responseError(s.base, resp)
		var we *wire.Error
		if resp.StatusCode == http.StatusUnauthorized && errors.As(err, &we) && we.Code == wire.CodeUnauthorized {
			return up, ErrRevoked
		}
		return up, err
	}
	if sctx.Err() != nil { // the timer fired just as the stream opened
		if ctx.Err() != nil {
			return up, ctx.Err()
		}
		return up, noAnswer(context.Cause(sctx))
	}

	up = time.Now()
	s.log.Info("control stream connected")
	s.setState(true, nil)

	c := &streamConn{
		start:       up,
		netmapReady: make(chan struct{}, 1),
		ackReady:    make(chan struct{}, 1),
	}
	done := make(chan error, 2) // one send per loop, never blocks
	var wg sync.WaitGroup
	wg.Go(func() { done <- c.readLoop(resp.Body, s.log, s.cfg.OnDenial) })
	wg.Go(func() { done <- c.writeLoop(sctx, pw, s.cfg.HeartbeatInterval) })

	err = s.serve(ctx, c, done, applyLog)

	cancel(errStreamClosed) // also closes the pipe, see above
	resp.Body.Close()
	wg.Wait()
	return up, err
}

// streamConn is the state shared by one stream's goroutines.
type streamConn struct {
	start time.Time
	// lastRecv is when the last line arrived, as nanoseconds since start
	// (monotonic). Written by readLoop, read by serve.
	lastRecv atomic.Int64
	// latest is the newest netmap not yet taken by serve; readLoop
	// replaces it, serve swaps it out. netmapReady signals a store.
	latest      atomic.Pointer[wire.NetMap]
	netmapReady chan struct{}
	// ack is the version to acknowledge next; serve stores it and signals
	// ackReady, writeLoop sends it.
	ack      atomic.Uint64
	ackReady chan struct{}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func (c *streamConn) sinceLastRecv() time.Duration {
	return time.Since(c.start) - time.Duration(c.lastRecv.Load())
}

// readLoop reads the coordinator's messages until the body fails. It never
// waits on serve: a netmap that arrives while Apply runs replaces any
// older one not yet taken. Denials go to onDenial, if set.
//
// A message of a type this node does not know is skipped (a newer
// coordinator may send more); a malformed message of a known type ends
// the stream.
func (c *streamConn) readLoop(body io.Reader, log *slog.Logger, onDenial func(wire.FlowRecord)) error {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), maxMessage)
	for sc.Scan() {
		c.lastRecv.Store(int64(time.Since(c.start)))
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var m wire.StreamMessage
		if err := json.Unmarshal(line, &m); err != nil {
			// A message of a newer type may use a field name of ours
			// for something else: only its type has to make sense.
			var head struct {
				Type wire.MessageType `json:"type"`
			}
			if json.Unmarshal(line, &head) != nil || knownMessage(head.Type) {
				return fmt.Errorf("reading the control stream: %w", err)
			}
			m = wire.StreamMessage{Type: head.Type}
		}
		if !knownMessage(m.Type) {
			// It still proves the stream alive.
			log.Debug("ignoring unknown control message", "type", string(m.Type))
			continue
		}
		if err := m.Validate(); err != nil {
			return fmt.Errorf("reading the control stream: %w", err)
		}
		switch m.Type {
		case wire.MsgNetMap:
			c.latest.Store(m.NetMap)
			signal(c.netmapReady)
		case wire.MsgDenial:
			if onDenial != nil {
				onDenial(*m.Denial)
			}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("reading the control stream: a message is larger than %d MiB", maxMessage>>20)
		}
		return fmt.Errorf("reading the control stream: %w", err)
	}
	return errors.New("the coordinator closed the control stream")
}

// knownMessage reports whether a node knows what to do with a message of
// type t (acks are the node's own to send: one arriving is ignored).
func knownMessage(t wire.MessageType) bool {
	switch t {
	case wire.MsgNetMap, wire.MsgPing, wire.MsgDenial, wire.MsgAck:
		return true
	}
	return false
}

// writeLoop sends a ping every interval and each ack serve asks for, until
// ctx ends or a write fails.
func (c *streamConn) writeLoop(ctx context.Context, w io.Writer, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		var m wire.StreamMessage
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			m = wire.StreamMessage{Type: wire.MsgPing}
		case <-c.ackReady:
			m = wire.StreamMessage{Type: wire.MsgAck, Version: c.ack.Load()}
		}
		b, err := json.Marshal(m)
		if err != nil {
			return fmt.Errorf("encoding a control message: %w", err)
		}
		if _, err := w.Write(append(b, '\n')); err != nil {
			return fmt.Errorf("writing the control stream: %w", err)
		}
	}
}

// serve applies netmaps, retries a failed Apply with backoff, and ends the
// stream when a loop fails, ctx ends or the coordinator falls silent for
// HeartbeatTimeout.
func (s *Session) serve(ctx context.Context, c *streamConn, done <-chan error, applyLog *rateLimiter) error {
	timeout := s.cfg.HeartbeatTimeout
	watchdog := time.NewTimer(timeout)
	defer watchdog.Stop()
	retry := time.NewTimer(0)
	retry.Stop()
	defer retry.Stop()

	var failed *wire.NetMap // last netmap Apply refused, to retry
	failures := 0
	apply := func(nm *wire.NetMap) {
		retry.Stop()
		if err := s.cfg.Apply(ctx, nm); err != nil {
			if ctx.Err() != nil {
				return
			}
			failed = nm
			wait := s.cfg.Backoff.delay(failures)
			failures++
			if ok, n := applyLog.allow(time.Now(), err.Error()); ok {
				s.log.Error("applying netmap", "version", nm.Version, "err", err, "retry_in", wait.Round(time.Millisecond), "suppressed", n)
			}
			retry.Reset(wait)
			return
		}
		failed, failures = nil, 0
		s.log.Debug("applied netmap", "version", nm.Version)
		c.ack.Store(nm.Version)
		signal(c.ackReady)
	}

	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-done:
			return err
		case <-watchdog.C:
			since := c.sinceLastRecv()
			if since >= timeout {
				return fmt.Errorf("the coordinator sent nothing for %v", since.Round(time.Millisecond))
			}
			watchdog.Reset(timeout - since)
		case <-c.netmapReady:
			if nm := c.latest.Swap(nil); nm != nil {
				failures = 0
				apply(nm)
			}
		case <-retry.C:
			if failed != nil {
				apply(failed)
			}
		}
	}
}
