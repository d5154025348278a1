package api_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrennet/warren/overlay/coord"
	"github.com/warrennet/warren/overlay/coord/api"
	"github.com/warrennet/warren/overlay/coord/store"
	"github.com/warrennet/warren/overlay/coord/tlscert"
	"github.com/warrennet/warren/overlay/wire"
)

// limited is a real coordinator served as cmd/warren/run serves it (TLS,
// HTTP/2, api.Configure) on loopback, with the limits a test sets.
type limited struct {
	co    *coord.Coordinator
	addr  string // host:port
	url   string
	admin string // admin secret
}

func startLimited(t *testing.T, l api.Limits) *limited {
	t.Helper()
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	cert, pin, err := tlscert.LoadOrCreate(t.TempDir(), []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "https://" + ln.Addr().String()
	co, err := coord.New(ctx, coord.Config{Store: st, URL: url, Pin: pin})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ErrorLog: log.New(io.Discard, "", 0), TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}}
	gated, err := api.New(co, nil).Configure(srv, ln, l)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.ServeTLS(gated, "", "")
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
		st.Close()
	})
	resp, err := co.CreateAdminToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := wire.ParseToken(resp.Token)
	if err != nil {
		t.Fatal(err)
	}
	return &limited{co: co, addr: ln.Addr().String(), url: url, admin: tok.Secret}
}

// testLimits are roomy limits a test narrows.
func testLimits() api.Limits {
	l := api.DefaultLimits()
	l.UnauthConnsPerSource, l.UnauthConns = 1000, 2000
	l.UnauthBurst = 100000
	return l
}

// client returns an HTTP client whose connections come from the loopback
// address from (127.0.0.x), over HTTP/2 or HTTP/1.1.
func client(t *testing.T, from string, h2 bool) *http.Client {
	t.Helper()
	protos := []string{"http/1.1"}
	if h2 {
		protos = []string{"h2"}
	}
	tr := &http.Transport{
		DialContext:       (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}).DialContext,
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true, NextProtos: protos}, // loopback test server
		ForceAttemptHTTP2: h2,
	}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

// call makes one request and returns its status, body and Retry-After.
func call(t *testing.T, hc *http.Client, method, url, secret string, body io.Reader) (int, []byte, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header.Get("Retry-After")
}

// adminAnswers checks that an admin call answers 200 within 1s.
func (s *limited) adminAnswers(t *testing.T, hc *http.Client) {
	t.Helper()
	start := time.Now()
	status, body, _ := call(t, hc, http.MethodGet, s.url+wire.PathNodes, s.admin, nil)
	if d := time.Since(start); status != http.StatusOK || d > time.Second {
		t.Errorf("admin call during the attack: status %d (%s) after %v, want 200 within 1s", status, body, d.Round(time.Millisecond))
	}
}

// dialRaw opens a TLS connection speaking HTTP/1.1 from a loopback address.
func dialRaw(addr, from string) (*tls.Conn, error) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	return tls.DialWithDialer(d, "tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}) // loopback test server
}

// TestSlowBodiesClosedWithinReadTimeout: a few hundred enrollments whose
// bodies trickle in a byte at a time are cut off at the read time-out,
// while admin calls keep answering within a second.
func TestSlowBodiesClosedWithinReadTimeout(t *testing.T) {
	const slow = 200
	l := testLimits()
	l.ReadTimeout = time.Second
	s := startLimited(t, l)
	// The attacker holds a valid reusable token: the body is read.
	resp, err := s.co.CreateToken(context.Background(), wire.CreateTokenRequest{Role: wire.RoleClient, Name: "x", Reusable: true})
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := wire.ParseToken(resp.Token)
	admin := client(t, "127.0.0.1", true)
	s.adminAnswers(t, admin)

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	lasted := make(chan time.Duration, slow)
	var wg sync.WaitGroup
	defer wg.Wait()
	for range slow {
		c, err := dialRaw(s.addr, "127.0.0.2")
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			defer c.Close()
			start := time.Now()
			fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{", wire.PathEnroll, tok.Secret)
			closed := make(chan struct{})
			go func() { // trickle until the server closes the connection
				defer close(closed)
				io.Copy(io.Discard, c)
			}()
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-closed:
					lasted <- time.Since(start)
					return
				case <-ctx.Done():
					c.Close()
					<-closed
					lasted <- -1
					return
				case <-tick.C:
					c.Write([]byte(" "))
				}
			}
		})
	}
	for range 3 {
		time.Sleep(300 * time.Millisecond)
		s.adminAnswers(t, admin)
	}
	wg.Wait()
	close(lasted)
	longest := time.Duration(0)
	for d := range lasted {
		if d < 0 {
			t.Fatalf("a slow body was still being read after 15s; read time-out %v", l.ReadTimeout)
		}
		longest = max(longest, d)
	}
	if longest > l.ReadTimeout+2*time.Second {
		t.Errorf("slowest body cut after %v, want within the %v read time-out (+2s)", longest, l.ReadTimeout)
	}
	s.adminAnswers(t, admin)
}

// TestUnauthenticatedConnectionCaps: one source cannot hold more than its
// share of connections without a credential, all sources together not
// more than the global cap; connections that authenticated are not
// counted, so admin calls keep working.
func TestUnauthenticatedConnectionCaps(t *testing.T) {
	l := testLimits()
	l.HeaderTimeout, l.ReadTimeout = 20*time.Second, 20*time.Second
	l.UnauthConnsPerSource, l.UnauthConns = 20, 30
	s := startLimited(t, l)
	admin := client(t, "127.0.0.1", true)
	s.adminAnswers(t, admin) // its connection is authenticated from now on

	// open dials n plain TCP connections from one address and tells how
	// many the server closed at once.
	var held []net.Conn
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	open := func(from string, n int) (refused int) {
		var conns []net.Conn
		for range n {
			c, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}).Dial("tcp", s.addr)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
		// The listener decides in order: once a later connection has
		// been accepted or refused, these have been too.
		if probe, err := dialRaw(s.addr, "127.0.0.1"); err == nil {
			probe.Close()
		}
		closed := make([]bool, len(conns))
		var wg sync.WaitGroup
		deadline := time.Now().Add(200 * time.Millisecond)
		for i, c := range conns {
			c.SetReadDeadline(deadline)
			wg.Go(func() {
				var b [1]byte
				_, err := c.Read(b[:])
				var ne net.Error
				closed[i] = !errors.As(err, &ne) || !ne.Timeout()
			})
		}
		wg.Wait()
		for i, c := range conns {
			if closed[i] {
				refused++
				c.Close()
			} else {
				held = append(held, c) // still open: accepted and counted
			}
		}
		return refused
	}
	tests := []struct {
		from        string
		n           int
		wantRefused int
	}{
		{"127.0.0.2", 30, 10}, // past the per-source cap
		{"127.0.0.3", 15, 5},  // past the global cap (20 + 10 = 30)
		{"127.0.0.4", 5, 5},   // the global cap is full
	}
	for _, tt := range tests {
		if got := open(tt.from, tt.n); got != tt.wantRefused {
			t.Errorf("%d connections from %s: %d closed at once, want %d", tt.n, tt.from, got, tt.wantRefused)
		}
		s.adminAnswers(t, admin)
	}
	// Closing the held connections frees the caps.
	for _, c := range held {
		c.Close()
	}
	held = nil
	deadline := time.Now().Add(5 * time.Second)
	for open("127.0.0.4", 1) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("caps not freed 5s after the connections closed")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestUnauthenticatedFloodGets429: requests without a valid credential
// from one source are answered 429 with Retry-After once its budget is
// spent, whatever their kind; an admin from the same address is not
// limited.
func TestUnauthenticatedFloodGets429(t *testing.T) {
	l := testLimits()
	l.UnauthRate, l.UnauthBurst = 0.5, 10
	s := startLimited(t, l)
	hc := client(t, "127.0.0.1", true)
	kinds := []struct {
		name, method, path, secret string
		body                       string
	}{
		{"health", http.MethodGet, wire.PathHealth, "", ""},
		{"enroll, unknown token", http.MethodPost, wire.PathEnroll, "nope", `{}`},
		{"admin, garbage token", http.MethodGet, wire.PathNodes, "garbage", ""},
		{"stream, garbage credential", http.MethodPost, wire.PathStream, "garbage", ""},
		{"login", http.MethodPost, wire.PathLogin, "", `{}`},
		{"login wait", http.MethodPost, wire.PathLoginWait, "", `{"wait_secret": "guess"}`},
		{"login page", http.MethodGet, wire.PathLoginPage + "/x", "", ""},
		{"oidc callback", http.MethodGet, wire.PathOIDCCallback + "?state=x&code=y", "", ""},
	}
	limitedSeen := 0
	for i := range 3 * l.UnauthBurst {
		k := kinds[i%len(kinds)]
		status, body, retry := call(t, hc, k.method, s.url+k.path, k.secret, strings.NewReader(k.body))
		if status != http.StatusTooManyRequests {
			if i >= l.UnauthBurst {
				t.Errorf("request %d (%s): status %d (%s), want 429 past the burst of %d", i+1, k.name, status, body, l.UnauthBurst)
			}
			continue
		}
		limitedSeen++
		if i < l.UnauthBurst {
			t.Errorf("request %d (%s): 429 within the burst of %d", i+1, k.name, l.UnauthBurst)
		}
		var we wire.Error
		if err := json.Unmarshal(body, &we); err != nil || we.Code != wire.CodeRateLimited || we.Message == "" {
			t.Errorf("429 body %s, want a JSON error with code %q", body, wire.CodeRateLimited)
		}
		if retry == "" || retry == "0" {
			t.Errorf("429 with Retry-After %q, want whole seconds", retry)
		}
		if i%7 == 0 {
			s.adminAnswers(t, hc)
		}
	}
	if limitedSeen == 0 {
		t.Fatal("no 429 in a flood of unauthenticated requests")
	}
	// Another source has its own budget.
	if status, body, _ := call(t, client(t, "127.0.0.2", true), http.MethodGet, s.url+wire.PathHealth, "", nil); status != http.StatusOK {
		t.Errorf("health from another source: %d (%s), want 200", status, body)
	}
}

// TestControlStreamOutlivesReadTimeout: an authenticated control stream
// stays open past the read time-out for request bodies, over HTTP/2 and
// HTTP/1.1, and gets the next change.
func TestControlStreamOutlivesReadTimeout(t *testing.T) {
	l := testLimits()
	l.ReadTimeout = 300 * time.Millisecond
	s := startLimited(t, l)
	for _, h2 := range []bool{true, false} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) {
			name := fmt.Sprintf("office-%v", h2)
			tok, err := s.co.CreateToken(context.Background(), wire.CreateTokenRequest{Role: wire.RoleConnector, Name: name})
			if err != nil {
				t.Fatal(err)
			}
			parsed, _ := wire.ParseToken(tok.Token)
			var key wire.Key
			key[0], key[1] = 1, byte(len(name))
			if h2 {
				key[2] = 1
			}
			er, err := s.co.Enroll(context.Background(), parsed.Secret, wire.EnrollRequest{PublicKey: key})
			if err != nil {
				t.Fatal(err)
			}
			pr, pw := io.Pipe()
			defer pw.Close()
			req, _ := http.NewRequest(http.MethodPost, s.url+wire.PathStream, pr)
			req.Header.Set("Authorization", "Bearer "+er.Credential)
			hc := client(t, "127.0.0.1", h2)
			hc.Timeout = 0
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			lines := bufio.NewScanner(resp.Body)
			lines.Buffer(nil, 1<<20)
			next := func() (*wire.StreamMessage, error) {
				for lines.Scan() {
					var m wire.StreamMessage
					if err := json.Unmarshal(lines.Bytes(), &m); err != nil {
						return nil, err
					}
					if m.Type == wire.MsgNetMap {
						return &m, nil
					}
				}
				return nil, fmt.Errorf("stream ended: %v", lines.Err())
			}
			if _, err := next(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(4 * l.ReadTimeout)
			if _, err := s.co.AddRoute(context.Background(), wire.AddRouteRequest{Prefix: fmt.Sprintf("10.%d.0.0/16", key[2]), Connector: name}); err != nil {
				t.Fatal(err)
			}
			m, err := next()
			if err != nil {
				t.Fatalf("after %v (read time-out %v): %v", 4*l.ReadTimeout, l.ReadTimeout, err)
			}
			if len(m.NetMap.Routes) != 1 {
				t.Errorf("netmap routes %v, want the new one", m.NetMap.Routes)
			}
		})
	}
}
