package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/things-go/go-socks5/statute"
)

var ioReadFull = io.ReadFull

// tcpEcho runs a TCP echo server on loopback until the test ends and returns its address.
func tcpEcho(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// fileServer serves body at /file (and the request's Via and hop-by-hop headers at /headers)
// over HTTP or HTTPS until the test ends.
func fileServer(t *testing.T, tls bool, body string) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/file", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, body) })
	mux.HandleFunc("/headers", func(w http.ResponseWriter, r *http.Request) {
		for _, h := range []string{"Connection", "Keep-Alive", "Proxy-Authorization", "Proxy-Connection", "X-Hop", "X-End", "Via", "X-Forwarded-For"} {
			fmt.Fprintf(w, "%s=%q\n", h, r.Header.Values(h))
		}
	})
	var s *httptest.Server
	if tls {
		s = httptest.NewTLSServer(mux)
	} else {
		s = httptest.NewServer(mux)
	}
	t.Cleanup(s.Close)
	return s
}

// portOf returns the port of a "host:port" or a URL's.
func portOf(t *testing.T, addr string) string {
	t.Helper()
	addr = strings.TrimPrefix(strings.TrimPrefix(addr, "http://"), "https://")
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// socksHandshake greets the SOCKS5 server at proxy (with user and pass if set), sends the request
// cmd for dst and returns the conn and the reply.
func socksHandshake(t *testing.T, proxy string, cmd byte, dst string) (net.Conn, statute.Reply) {
	t.Helper()
	c, err := net.Dial("tcp", proxy)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(statute.NewMethodRequest(statute.VersionSocks5, []byte{statute.MethodNoAuth}).Bytes()); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	mr, err := statute.ParseMethodReply(br)
	if err != nil || mr.Method != statute.MethodNoAuth {
		t.Fatalf("method reply = %+v, %v", mr, err)
	}
	as, err := statute.ParseAddrSpec(dst)
	if err != nil {
		t.Fatal(err)
	}
	req := statute.Request{Version: statute.VersionSocks5, Command: cmd, DstAddr: as}
	if _, err := c.Write(req.Bytes()); err != nil {
		t.Fatal(err)
	}
	rep, err := statute.ParseReply(br)
	if err != nil {
		t.Fatalf("reply: %v", err)
	}
	c.SetDeadline(time.Time{})
	return c, rep
}

// socksConnect opens a CONNECT flow to dst through proxy and checks it echoes.
func socksConnect(t *testing.T, proxy, dst string) net.Conn {
	t.Helper()
	c, rep := socksHandshake(t, proxy, statute.CommandConnect, dst)
	if rep.Response != statute.RepSuccess {
		t.Fatalf("CONNECT %s: reply %d", dst, rep.Response)
	}
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("echo through CONNECT = %q, %v", buf, err)
	}
	return c
}

// TestSOCKS5Curl fetches a file with real curl through the SOCKS5 proxy, with and without
// credentials, and checks what the Dialer was asked for: with --socks5-hostname the name itself.
func TestSOCKS5Curl(t *testing.T) {
	needCurl(t)
	body := strings.Repeat("warren socks5 ", 50000)
	web := fileServer(t, false, body)
	port := portOf(t, web.URL)
	tests := []fetchCase{
		{
			name: "socks5-hostname passes the name", args: []string{"--proxy", "socks5h://%s"}, url: "http://files.corp.test:" + port + "/file",
			wantCalls: []dialCall{{"tcp", "files.corp.test:" + port}},
		},
		{
			name: "socks5 with an address", args: []string{"--proxy", "socks5://%s"}, url: "http://127.0.0.1:" + port + "/file",
			wantCalls: []dialCall{{"tcp", "127.0.0.1:" + port}},
		},
		{
			name: "credentials accepted", user: "alice", pass: "s3cret", args: []string{"--proxy", "socks5h://alice:s3cret@%s"},
			url: "http://files.corp.test:" + port + "/file", wantCalls: []dialCall{{"tcp", "files.corp.test:" + port}},
		},
		{
			// curl: (97) User was rejected by the SOCKS5 server (1 1).
			name: "wrong password", user: "alice", pass: "s3cret", args: []string{"--proxy", "socks5h://alice:guess@%s"},
			url: "http://files.corp.test:" + port + "/file", wantExit: 97,
		},
		{
			name: "wrong user", user: "alice", pass: "s3cret", args: []string{"--proxy", "socks5h://mallory:s3cret@%s"},
			url: "http://files.corp.test:" + port + "/file", wantExit: 97,
		},
		{
			// curl offers no authentication; the server accepts only username/password.
			name: "no credentials", user: "alice", pass: "s3cret", args: []string{"--proxy", "socks5h://%s"},
			url: "http://files.corp.test:" + port + "/file", wantExit: 97,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, "socks5", body) })
	}
}

// TestSOCKS5Replies checks the reply to a CONNECT whose dial fails, for each kind of error.
func TestSOCKS5Replies(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusing := closed.Addr().String()
	closed.Close()
	tests := []struct {
		name string
		dst  string
		err  error // the fake's error; nil dials for real
		want uint8
	}{
		{"refused for real", refusing, nil, statute.RepConnectionRefused},
		{"refused", "10.0.0.1:80", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, statute.RepConnectionRefused},
		{"network unreachable", "10.0.0.2:80", fmt.Errorf("dialing: %w", syscall.ENETUNREACH), statute.RepNetworkUnreachable},
		{"host unreachable", "10.0.0.3:80", fmt.Errorf("dialing: %w", syscall.EHOSTUNREACH), statute.RepHostUnreachable},
		{"not allowed", "10.0.0.4:80", fmt.Errorf("policy: %w", syscall.EACCES), statute.RepRuleFailure},
		{"name not found", "nope.test:80", &net.DNSError{Err: "no such host", Name: "nope.test", IsNotFound: true}, statute.RepHostUnreachable},
		{"timeout", "10.0.0.5:80", context.DeadlineExceeded, statute.RepHostUnreachable},
		{"anything else", "10.0.0.6:80", errors.New("something"), statute.RepHostUnreachable},
	}
	fail := map[string]error{}
	for _, tt := range tests {
		if tt.err != nil {
			fail[tt.dst] = tt.err
		}
	}
	s := start(t, Config{SOCKS5: "127.0.0.1:0", Dialer: &fakeDialer{fail: fail}})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, rep := socksHandshake(t, s.socks5, statute.CommandConnect, tt.dst)
			if rep.Response != tt.want {
				t.Errorf("reply = %d, want %d", rep.Response, tt.want)
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if n, err := c.Read(make([]byte, 1)); err == nil {
				t.Errorf("read after a failure reply = %d bytes, want the conn closed", n)
			}
		})
	}
}

// TestSOCKS5Commands checks what the server does with the rest of RFC 1928's requests.
func TestSOCKS5Commands(t *testing.T) {
	s := start(t, Config{SOCKS5: "127.0.0.1:0", Dialer: &fakeDialer{}})
	t.Run("bind is not supported", func(t *testing.T) {
		_, rep := socksHandshake(t, s.socks5, statute.CommandBind, "127.0.0.1:0")
		if rep.Response != statute.RepCommandNotSupported {
			t.Errorf("BIND reply = %d, want %d", rep.Response, statute.RepCommandNotSupported)
		}
	})
	t.Run("a name that is no host name", func(t *testing.T) {
		c, rep := socksHandshake(t, s.socks5, statute.CommandConnect, "bad%name:80")
		if rep.Response != statute.RepHostUnreachable {
			t.Errorf("reply = %d, want %d", rep.Response, statute.RepHostUnreachable)
		}
		c.Close()
	})
	t.Run("data sent before the reply reaches the destination", func(t *testing.T) {
		echo := tcpEcho(t)
		c, err := net.Dial("tcp", s.socks5)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		as, _ := statute.ParseAddrSpec(echo)
		req := statute.Request{Version: statute.VersionSocks5, Command: statute.CommandConnect, DstAddr: as}
		// Greeting, request and payload in one write: the library's reader buffers the payload.
		msg := append(statute.NewMethodRequest(statute.VersionSocks5, []byte{statute.MethodNoAuth}).Bytes(), req.Bytes()...)
		if _, err := c.Write(append(msg, "early"...)); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got := make([]byte, 2+10+5) // method reply, reply with an IPv4 address, the echo
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatal(err)
		}
		if string(got[12:]) != "early" {
			t.Errorf("echo = %q, want %q", got[12:], "early")
		}
	})
}

// TestSOCKS5HandshakeTimeout checks that a client that never completes its request is
// disconnected.
func TestSOCKS5HandshakeTimeout(t *testing.T) {
	s := start(t, Config{SOCKS5: "127.0.0.1:0", Dialer: &fakeDialer{}}, func(l *limits) { l.handshake = 100 * time.Millisecond })
	c, err := net.Dial("tcp", s.socks5)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte{5, 1})
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(c); err != nil {
		t.Errorf("read = %v, want the server to close the conn (EOF)", err)
	}
}

// TestSOCKS5HalfClose checks that a client's half-close reaches the destination and the answer
// still comes back.
func TestSOCKS5HalfClose(t *testing.T) {
	s := start(t, Config{SOCKS5: "127.0.0.1:0", Dialer: &fakeDialer{}})
	c := socksConnect(t, s.socks5, tcpEcho(t))
	if _, err := c.Write([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "bye" {
		t.Errorf("after half-close read %q, %v; want %q and EOF", got, err, "bye")
	}
}
