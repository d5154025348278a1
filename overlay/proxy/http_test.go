package proxy

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHTTPCurl fetches a file with real curl through the HTTP proxy: plain http:// with an
// absolute URI, and https:// through CONNECT, with and without credentials; the Dialer gets the
// name.
func TestHTTPCurl(t *testing.T) {
	needCurl(t)
	body := strings.Repeat("warren http proxy ", 50000)
	web, tls := fileServer(t, false, body), fileServer(t, true, body)
	webURL := "http://files.corp.test:" + portOf(t, web.URL) + "/file"
	tlsURL := "https://files.corp.test:" + portOf(t, tls.URL) + "/file"
	webDial := []dialCall{{"tcp", "files.corp.test:" + portOf(t, web.URL)}}
	tlsDial := []dialCall{{"tcp", "files.corp.test:" + portOf(t, tls.URL)}}
	proxy := []string{"-k", "--fail", "--proxy", "http://%s"}
	withUser := func(u string) []string { return append(proxy[:len(proxy):len(proxy)], "--proxy-user", u) }
	tests := []fetchCase{
		{name: "plain http", args: proxy, url: webURL, wantCalls: webDial},
		{name: "https through CONNECT", args: proxy, url: tlsURL, wantCalls: tlsDial},
		{name: "plain http with credentials", user: "alice", pass: "s3cret", args: withUser("alice:s3cret"), url: webURL, wantCalls: webDial},
		{name: "CONNECT with credentials", user: "alice", pass: "s3cret", args: withUser("alice:s3cret"), url: tlsURL, wantCalls: tlsDial},
		// curl: (22) The requested URL returned error: 407
		{name: "plain http, wrong password", user: "alice", pass: "s3cret", args: withUser("alice:guess"), url: webURL, wantExit: 22},
		{name: "plain http, no credentials", user: "alice", pass: "s3cret", args: proxy, url: webURL, wantExit: 22},
		// With --fail, curl says 22 for a CONNECT answered 407 too.
		{name: "CONNECT, wrong user", user: "alice", pass: "s3cret", args: withUser("bob:s3cret"), url: tlsURL, wantExit: 22},
		{name: "CONNECT, no credentials", user: "alice", pass: "s3cret", args: proxy, url: tlsURL, wantExit: 22},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, "http", body) })
	}
}

// TestHTTPHeaders checks what a forwarded request carries: no hop-by-hop header (those named in
// Connection among them), no credentials for the proxy, no X-Forwarded-For, and a Via.
func TestHTTPHeaders(t *testing.T) {
	needCurl(t)
	web := fileServer(t, false, "")
	s := start(t, Config{HTTP: "127.0.0.1:0", Username: "alice", Password: "s3cret", Dialer: &fakeDialer{}})
	out, code := curl(t, "--fail", "--proxy", "http://"+s.http, "--proxy-user", "alice:s3cret",
		"-H", "Connection: X-Hop", "-H", "X-Hop: 1", "-H", "Keep-Alive: timeout=5", "-H", "X-End: 1", web.URL+"/headers")
	if code != 0 {
		t.Fatalf("curl exit %d: %s", code, out)
	}
	for _, want := range []string{`Connection=[]`, `Keep-Alive=[]`, `Proxy-Authorization=[]`, `Proxy-Connection=[]`, `X-Hop=[]`, `X-End=["1"]`, `Via=["1.1 warren"]`, `X-Forwarded-For=[]`} {
		if !strings.Contains(out, want) {
			t.Errorf("the server saw:\n%s\nwant a line %s", out, want)
		}
	}
}

// TestHTTPStatus checks the status the proxy answers with when it cannot serve a request.
func TestHTTPStatus(t *testing.T) {
	needCurl(t)
	fail := map[string]error{
		"refused.test:80":   fmt.Errorf("dialing: %w", syscall.ECONNREFUSED),
		"slow.test:80":      context.DeadlineExceeded,
		"forbidden.test:80": fmt.Errorf("policy: %w", syscall.EPERM),
		"refused.test:443":  fmt.Errorf("dialing: %w", syscall.ECONNREFUSED),
		"slow.test:443":     context.DeadlineExceeded,
	}
	d := &fakeDialer{fail: fail, names: map[string]string{"myself.test": "127.0.0.1"}} // myself: the proxy
	s := start(t, Config{HTTP: "127.0.0.1:0", Dialer: d})
	tests := []struct {
		name string
		url  string
		want string // curl's "%{http_code} %{http_connect}"
	}{
		{"refused", "http://refused.test/", "502 000"},
		{"timed out", "http://slow.test/", "504 000"},
		{"not allowed", "http://forbidden.test/", "403 000"},
		{"CONNECT refused", "https://refused.test/", "000 502"},
		{"CONNECT timed out", "https://slow.test/", "000 504"},
		// The forwarded request reaches the proxy itself in origin form, which it refuses: no loop.
		{"back to the proxy", "http://myself.test:" + portOf(t, s.http) + "/", "400 000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _ := curl(t, "-o", "/dev/null", "-w", "%{http_code} %{http_connect}", "--proxy", "http://"+s.http, tt.url)
			if got := lastLine(out); got != tt.want {
				t.Errorf("curl -w = %q, want %q (output %q)", got, tt.want, out)
			}
		})
	}
}

// lastLine returns the last line of out.
func lastLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[len(lines)-1]
}

// TestHTTPBadRequests checks the requests the proxy refuses before dialing anything.
func TestHTTPBadRequests(t *testing.T) {
	d := &fakeDialer{}
	s := start(t, Config{HTTP: "127.0.0.1:0", Dialer: d})
	tests := []struct {
		name    string
		request string
		want    int
	}{
		{"origin-form request", "GET /file HTTP/1.1\r\nHost: files.corp.test\r\n\r\n", http.StatusBadRequest},
		{"ftp URI", "GET ftp://files.corp.test/file HTTP/1.1\r\nHost: files.corp.test\r\n\r\n", http.StatusBadRequest},
		{"CONNECT without a port", "CONNECT files.corp.test HTTP/1.1\r\nHost: files.corp.test\r\n\r\n", http.StatusBadRequest},
		{"CONNECT to no host name", "CONNECT bad%name:443 HTTP/1.1\r\nHost: bad%name:443\r\n\r\n", http.StatusBadRequest},
		{"headers too large", "GET http://files.corp.test/ HTTP/1.1\r\nHost: files.corp.test\r\nX-Big: " + strings.Repeat("a", maxHeaderBytes+8<<10) + "\r\n\r\n", http.StatusRequestHeaderFieldsTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", s.http)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			go c.Write([]byte(tt.request)) // the server may answer before it has read everything
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
	if calls := d.Calls(); len(calls) != 0 {
		t.Errorf("dialer called for bad requests: %v", calls)
	}
}
