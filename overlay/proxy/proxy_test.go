package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/warrennet/warren/internal/testutil"
)

// dialCall is one call to a fakeDialer.
type dialCall struct{ Network, Address string }

// fakeDialer records every call and dials loopback: a host in names is dialed at the address it
// maps to, an address in fail fails with its error, anything else is dialed as it is.
type fakeDialer struct {
	names map[string]string // host name → IP
	fail  map[string]error  // "host:port" → the dial's error

	mu    sync.Mutex // guards calls and conns
	calls []dialCall
	conns []*fakeConn
}

// fakeConn is a conn a fakeDialer dialed, which knows whether it was closed. A TCP conn keeps its
// half-close.
type fakeConn struct {
	net.Conn
	closed atomic.Bool
}

func (c *fakeConn) Close() error {
	c.closed.Store(true)
	return c.Conn.Close()
}

func (c *fakeConn) CloseWrite() error { return c.Conn.(*net.TCPConn).CloseWrite() }

func (d *fakeDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	d.mu.Lock()
	d.calls = append(d.calls, dialCall{network, address})
	d.mu.Unlock()
	if err := d.fail[address]; err != nil {
		return nil, err
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	if ip, ok := d.names[host]; ok {
		address = net.JoinHostPort(ip, port)
	}
	var nd net.Dialer
	c, err := nd.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	fc := &fakeConn{Conn: c}
	d.mu.Lock()
	d.conns = append(d.conns, fc)
	d.mu.Unlock()
	return fc, nil
}

// Calls returns the calls so far.
func (d *fakeDialer) Calls() []dialCall {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]dialCall(nil), d.calls...)
}

// Conns returns the conns dialed so far.
func (d *fakeDialer) Conns() []*fakeConn {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]*fakeConn(nil), d.conns...)
}

// leakMarkers name the goroutines a Server runs.
var leakMarkers = []string{"proxy.(*Server)", "proxy.(*running)", "proxy.(*association)", "proxy.(*httpProxy)", "netstack.ProxyMeter", "proxy.(*fakeDialer)"}

// started is a Server running in a test.
type started struct {
	srv          *Server
	socks5, http string // listen addresses
	stop         func() // stops Run and checks it returned nil and left no goroutine
}

// start runs a Server for cfg (listening on free loopback ports unless cfg says otherwise), with
// adjust applied to its limits, and stops it at the test's end.
func start(t *testing.T, cfg Config, adjust ...func(*limits)) *started {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	for _, f := range adjust {
		f(&srv.lim)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	testutil.WaitFor(t, "the proxies to listen", func() bool {
		s, h := srv.Addrs()
		return (cfg.SOCKS5 == "" || s != nil) && (cfg.HTTP == "" || h != nil)
	})
	st := &started{srv: srv}
	s, h := srv.Addrs()
	if s != nil {
		st.socks5 = s.String()
	}
	if h != nil {
		st.http = h.String()
	}
	var once sync.Once
	st.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run = %v, want nil", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("Run did not return 10 s after its ctx ended:\n%s", testutil.Leaked(leakMarkers...))
			}
			testutil.NoLeaks(t, leakMarkers...)
		})
	}
	t.Cleanup(st.stop)
	return st
}

// testWriter sends the Server's log to the test's.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// needCurl skips the test where curl is missing.
func needCurl(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed (make deps installs it)")
	}
}

// curl runs curl with args and returns its output and exit code.
func curl(t *testing.T, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "curl", append([]string{"-sS", "--max-time", "15", "--noproxy", ""}, args...)...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	default:
		t.Fatalf("curl %v: %v", args, err)
		return "", -1
	}
}

// fetchCase is a file fetched with real curl through one of the proxies.
type fetchCase struct {
	name       string
	user, pass string   // the server's
	args       []string // curl's besides the URL; "%s" in one stands for the proxy's listen address
	url        string
	wantExit   int
	wantCalls  []dialCall
}

// run starts a Server with the proxy listen names ("socks5" or "http") on a free port, runs
// curl through it, and checks curl's exit code, that it got body, and the Dialer's calls.
func (tt fetchCase) run(t *testing.T, listen, body string) {
	d := &fakeDialer{names: map[string]string{"files.corp.test": "127.0.0.1"}}
	cfg := Config{Username: tt.user, Password: tt.pass, Dialer: d}
	addr := func(s *started) string { return s.socks5 }
	if listen == "http" {
		cfg.HTTP, addr = "127.0.0.1:0", func(s *started) string { return s.http }
	} else {
		cfg.SOCKS5 = "127.0.0.1:0"
	}
	s := start(t, cfg)
	var args []string
	for _, a := range tt.args {
		args = append(args, strings.ReplaceAll(a, "%s", addr(s)))
	}
	out, code := curl(t, append(args, tt.url)...)
	if code != tt.wantExit {
		t.Fatalf("curl exit %d, want %d; output %.300q", code, tt.wantExit, out)
	}
	if code == 0 && out != body {
		t.Errorf("curl got %d bytes, want the file's %d", len(out), len(body))
	}
	if diff := cmp.Diff(tt.wantCalls, d.Calls()); diff != "" {
		t.Errorf("dialer calls (-want +got):\n%s", diff)
	}
}

func TestValidate(t *testing.T) {
	d := &fakeDialer{}
	tests := []struct {
		name string
		cfg  Config
		want string // "" = valid
	}{
		{"both loopback", Config{SOCKS5: "127.0.0.1:1080", HTTP: "[::1]:1081", Dialer: d}, ""},
		{"socks5 only", Config{SOCKS5: "127.0.0.1:0", Dialer: d}, ""},
		{"http only on localhost", Config{HTTP: "localhost:1081", Dialer: d}, ""},
		{"loopback of 127/8", Config{SOCKS5: "127.3.4.5:1080", Dialer: d}, ""},
		{"all addresses with auth", Config{SOCKS5: ":1080", Username: "u", Password: "p", Dialer: d}, ""},
		{"LAN address with auth", Config{HTTP: "192.168.1.2:3128", Username: "u", Password: "p", Dialer: d}, ""},
		{"neither", Config{Dialer: d}, "proxy: neither a SOCKS5 nor an HTTP listen address is set"},
		{"no dialer", Config{SOCKS5: "127.0.0.1:1080"}, "proxy: no dialer"},
		{"all addresses without auth", Config{SOCKS5: ":1080", Dialer: d},
			"proxy: socks5 listen address :1080 is not loopback: set a username and password to listen on it"},
		{"0.0.0.0 without auth", Config{HTTP: "0.0.0.0:1081", Dialer: d},
			"proxy: http proxy listen address 0.0.0.0:1081 is not loopback: set a username and password to listen on it"},
		{"LAN address without auth", Config{SOCKS5: "127.0.0.1:1080", HTTP: "10.1.2.3:1081", Dialer: d},
			"proxy: http proxy listen address 10.1.2.3:1081 is not loopback: set a username and password to listen on it"},
		{"username without password", Config{SOCKS5: "127.0.0.1:1080", Username: "u", Dialer: d},
			"proxy: a username needs a password and a password a username"},
		{"password without username", Config{SOCKS5: "127.0.0.1:1080", Password: "p", Dialer: d},
			"proxy: a username needs a password and a password a username"},
		{"username with a colon", Config{SOCKS5: "127.0.0.1:1080", Username: "a:b", Password: "p", Dialer: d},
			"proxy: the username may not contain ':' (HTTP Basic auth separates it from the password with one)"},
		{"password too long", Config{SOCKS5: "127.0.0.1:1080", Username: "u", Password: strings.Repeat("p", 256), Dialer: d},
			"proxy: the username and the password may have at most 255 bytes each"},
		{"no port", Config{SOCKS5: "127.0.0.1", Dialer: d}, `proxy: socks5 listen address "127.0.0.1": want host:port`},
		{"bad port", Config{SOCKS5: "127.0.0.1:socks", Dialer: d},
			`proxy: socks5 listen address "127.0.0.1:socks": port "socks" is not a number from 0 to 65535`},
		{"port too big", Config{HTTP: "127.0.0.1:65536", Dialer: d},
			`proxy: http proxy listen address "127.0.0.1:65536": port "65536" is not a number from 0 to 65535`},
		{"a name", Config{SOCKS5: "proxy.example:1080", Dialer: d},
			`proxy: socks5 listen address "proxy.example:1080": host "proxy.example" is not an IP address`},
		{"a zone", Config{SOCKS5: "[fe80::1%lo]:1080", Username: "u", Password: "p", Dialer: d},
			`proxy: socks5 listen address "[fe80::1%lo]:1080": host "fe80::1%lo" is not an IP address`},
		{"same address twice", Config{SOCKS5: "127.0.0.1:1080", HTTP: "127.0.0.1:1080", Dialer: d},
			"proxy: socks5 and http proxy both listen on 127.0.0.1:1080"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ""
			if err := tt.cfg.Validate(); err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("Validate() = %q, want %q", got, tt.want)
			}
			if _, err := New(tt.cfg); (err == nil) != (tt.want == "") {
				t.Errorf("New() error = %v, want one iff Validate fails", err)
			}
		})
	}
}

func TestRunListenError(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	srv, err := New(Config{SOCKS5: "127.0.0.1:0", HTTP: taken.Addr().String(), Dialer: &fakeDialer{}})
	if err != nil {
		t.Fatal(err)
	}
	err = srv.Run(context.Background())
	if err == nil || !strings.HasPrefix(err.Error(), "proxy: http proxy: listen tcp") {
		t.Errorf("Run = %v, want the http proxy's listen error", err)
	}
	if err := srv.Run(context.Background()); err == nil || err.Error() != "proxy: Run called twice" {
		t.Errorf("second Run = %v, want it refused", err)
	}
	testutil.NoLeaks(t, leakMarkers...)
}

// TestShutdown stops a Server that has a CONNECT flow of each proxy, a UDP association and a
// client in the middle of its handshake open: Run returns and no goroutine is left.
func TestShutdown(t *testing.T) {
	echo := tcpEcho(t)
	udp := udpEcho(t)
	d := &fakeDialer{}
	s := start(t, Config{SOCKS5: "127.0.0.1:0", HTTP: "127.0.0.1:0", Dialer: d})

	socksFlow := socksConnect(t, s.socks5, echo)
	httpFlow, err := net.Dial("tcp", s.http)
	if err != nil {
		t.Fatal(err)
	}
	defer httpFlow.Close()
	if _, err := httpFlow.Write([]byte("CONNECT " + echo + " HTTP/1.1\r\nHost: " + echo + "\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len("HTTP/1.1 200 Connection established\r\n\r\n"))
	if _, err := ioReadFull(httpFlow, buf); err != nil {
		t.Fatalf("CONNECT: %v", err)
	}
	assoc := newUDPClient(t, s.socks5, "", "")
	assoc.exchange(t, udp, []byte("ping"))
	halfway, err := net.Dial("tcp", s.socks5)
	if err != nil {
		t.Fatal(err)
	}
	defer halfway.Close()
	halfway.Write([]byte{5}) // the greeting's first byte

	s.stop()
	for name, c := range map[string]net.Conn{"socks5 flow": socksFlow, "http flow": httpFlow, "handshake": halfway, "association": assoc.ctrl} {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
			t.Errorf("%s: read after Run returned = %v, want the conn closed", name, err)
		}
	}
	for _, c := range d.Conns() {
		if !c.closed.Load() {
			t.Errorf("dialed conn %v → %v still open after Run returned", c.LocalAddr(), c.RemoteAddr())
		}
	}
}
