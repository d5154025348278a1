package api

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/warrennet/warren/overlay/wire"
)

// Stream limits: one message from a node is small (an ack or a ping); a
// node that stops reading is dropped after writeTimeout.
const (
	maxNodeMessage = 64 << 10
	writeTimeout   = 10 * time.Second
)

func (s *Server) stream(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	// HTTP/1.1 needs full duplex switched on, even to refuse: the node's
	// request body never ends, so the answer must not wait for it.
	// HTTP/2 always has it.
	if err := rc.EnableFullDuplex(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		s.fail(w, r, fmt.Errorf("enabling full duplex: %w", err))
		return
	}
	node, err := s.c.AuthenticateNode(bearer(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	// Authenticated: the stream lives as long as its heartbeats say, not
	// as long as the server's read time-out for request bodies.
	if err := rc.SetReadDeadline(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
		s.fail(w, r, fmt.Errorf("lifting the read deadline: %w", err))
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}
	conn := &streamConn{nodeReader: newNodeReader(r.Body), w: w, rc: rc, timeout: s.writeTimeout}
	err = s.c.ServeStream(r.Context(), node, conn)
	s.log.Debug("stream ended", "node", node.Name, "err", err)
}

// streamConn frames a control stream as newline-delimited JSON. Send is
// called by one goroutine and Recv by another.
type streamConn struct {
	*nodeReader
	w  http.ResponseWriter
	rc *http.ResponseController
	// timeout bounds each Send.
	timeout time.Duration

	closeOnce sync.Once
}

func (c *streamConn) Send(msg []byte) error {
	if err := c.rc.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return fmt.Errorf("setting write deadline: %w", err)
	}
	if _, err := c.w.Write(msg); err != nil {
		return err
	}
	if _, err := c.w.Write(newline); err != nil {
		return err
	}
	if err := c.rc.Flush(); err != nil {
		return err
	}
	// Disarm the deadline: on HTTP/2 it is a timer that resets the
	// stream when it fires, even if nothing is being written then.
	if err := c.rc.SetWriteDeadline(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return fmt.Errorf("clearing write deadline: %w", err)
	}
	return nil
}

var newline = []byte{'\n'}

// Close unblocks a pending Recv by moving the read deadline to now.
func (c *streamConn) Close() error {
	c.closeOnce.Do(func() { _ = c.rc.SetReadDeadline(time.Now()) })
	return nil
}

// nodeReader reads a node's newline-delimited JSON messages.
type nodeReader struct {
	sc *bufio.Scanner
}

func newNodeReader(r io.Reader) *nodeReader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), maxNodeMessage)
	return &nodeReader{sc: sc}
}

// Recv returns the node's next message.
func (c *nodeReader) Recv() (*wire.StreamMessage, error) {
	if !c.sc.Scan() {
		if err := c.sc.Err(); err != nil {
			return nil, err
		}
		return nil, errors.New("node closed the stream")
	}
	var m wire.StreamMessage
	if err := json.Unmarshal(c.sc.Bytes(), &m); err != nil {
		return nil, fmt.Errorf("decoding message: %w", err)
	}
	return &m, nil
}
