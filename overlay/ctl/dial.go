package ctl

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// The dial endpoint: `warren nc HOST PORT`.
//
// POST /v1/dial?host=HOST&port=PORT with "Connection: Upgrade" and
// "Upgrade: warren-dial". The daemon dials HOST:PORT over TCP as the
// laptop reaches it through Warren (Backend.DialContext: the tunnel, or
// directly), then answers 101 Switching Protocols and the socket carries
// the connection's bytes both ways; an end of input on either side is
// passed on as a half-close (shutdown of writing), so both directions end
// independently. A failed dial is answered 502 with the usual one-line
// error before anything is switched; a caller who may not dial, 403.

// dialUpgrade is the protocol name of the Upgrade header.
const dialUpgrade = "warren-dial"

// serveDial is the dial endpoint's handler (authorised by guard).
func (s *Server) serveDial(w http.ResponseWriter, r *http.Request) {
	host, port := r.URL.Query().Get("host"), r.URL.Query().Get("port")
	if host == "" || port == "" {
		writeJSON(w, http.StatusBadRequest, Progress{Done: true, Error: "dial needs a host and a port"})
		return
	}
	if r.Header.Get("Upgrade") != dialUpgrade {
		writeJSON(w, http.StatusBadRequest, Progress{Done: true, Error: "dial needs Upgrade: " + dialUpgrade})
		return
	}
	up, err := s.b.DialContext(r.Context(), "tcp", net.JoinHostPort(host, port))
	if err != nil {
		writeJSON(w, http.StatusBadGateway, Progress{Done: true, Error: err.Error()})
		return
	}
	rc := http.NewResponseController(w)
	conn, brw, err := rc.Hijack()
	if err != nil {
		up.Close()
		writeJSON(w, http.StatusInternalServerError, Progress{Done: true, Error: "switching the connection: " + err.Error()})
		return
	}
	// The server's read and write time-outs are for requests, not for
	// the connection that follows.
	conn.SetDeadline(time.Time{})
	if _, err := io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: "+dialUpgrade+"\r\n\r\n"); err != nil {
		conn.Close()
		up.Close()
		return
	}
	s.log.Debug("dial: connected", "dest", net.JoinHostPort(host, port))
	// What the client sent after the request and the server already
	// read comes first.
	var in io.Reader = conn
	if n := brw.Reader.Buffered(); n > 0 {
		early, _ := brw.Reader.Peek(n)
		in = io.MultiReader(bytes.NewReader(bytes.Clone(early)), conn)
	}
	s.spliceAll(r.Context(), conn, in, up)
}

// spliceAll copies between the caller's socket and the dialled conn until
// both directions ended, or ctx (the server's) ends; then it closes both.
// The server waits for it on shutdown (s.dials).
func (s *Server) spliceAll(ctx context.Context, caller net.Conn, callerIn io.Reader, up net.Conn) {
	s.dialMu.Lock()
	if s.shut {
		s.dialMu.Unlock()
		caller.Close()
		up.Close()
		return
	}
	s.dials.Add(1)
	s.dialMu.Unlock()
	defer s.dials.Done()
	stop := context.AfterFunc(ctx, func() {
		caller.Close()
		up.Close()
	})
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() {
		io.Copy(up, callerIn)
		closeWrite(up)
	})
	io.Copy(caller, up)
	closeWrite(caller)
	wg.Wait()
	caller.Close()
	up.Close()
}

// closeWrite half-closes c if it can, else closes it.
func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}

// Dial asks the daemon for a TCP connection to host:port, opened as the
// laptop reaches it through Warren, and returns it: reads and writes
// carry the connection's bytes, CloseWrite half-closes it. host may be a
// name, which the daemon resolves (the netmap's names first). ctx bounds
// the dial, not the connection.
func (c *Client) Dial(ctx context.Context, host string, port uint16) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.path)
	if err != nil {
		return nil, c.connErr(err)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	v := url.Values{"host": {host}, "port": {strconv.Itoa(int(port))}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://warren"+pathDial+"?"+v.Encode(), nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", dialUpgrade)
	c.prove(req)
	if err := req.Write(conn); err != nil {
		conn.Close()
		return nil, c.connErr(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("reading the daemon's answer: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		defer conn.Close()
		var p Progress
		if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&p); err != nil || p.Error == "" {
			return nil, fmt.Errorf("the daemon answered %s", resp.Status)
		}
		return nil, errors.New(p.Error)
	}
	if !stop() {
		conn.Close()
		return nil, ctx.Err()
	}
	return &dialConn{Conn: conn, r: br}, nil
}

// dialConn is the caller's end of a dial: reads drain what the answer's
// reader buffered first.
type dialConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *dialConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// CloseWrite half-closes the connection: the far end reads EOF.
func (c *dialConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}
