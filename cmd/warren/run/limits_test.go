package run

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrennet/warren/cmd/warren/cli"
	"github.com/warrennet/warren/overlay/coord/api"
	"github.com/warrennet/warren/overlay/wire"
)

// TestCoordinatorServesWithinLimits: the coordinator's HTTP server runs
// with api.DefaultLimits: a flood of health checks from one address is
// answered 429 past the burst while the admin from the same address is
// served, an oversize header is refused, an oversize body is 413.
func TestCoordinatorServesWithinLimits(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Coordinator(ctx, cli.CoordinatorOptions{Listen: "127.0.0.1:0", RelayListen: "127.0.0.1:0", Data: dir, Ready: func(u string) { ready <- u }})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	var url string
	select {
	case url = <-ready:
	case err := <-done:
		t.Fatalf("coordinator stopped: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("coordinator not serving within 20s")
	}
	b, err := os.ReadFile(filepath.Join(dir, cli.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := wire.ParseToken(string(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true} // loopback test server
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	do := func(method, path, secret string, header map[string]string, body io.Reader) int {
		t.Helper()
		req, _ := http.NewRequest(method, url+path, body)
		if secret != "" {
			req.Header.Set("Authorization", "Bearer "+secret)
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}

	l := api.DefaultLimits()
	limited := 0
	for i := range l.UnauthBurst + 50 {
		if do(http.MethodGet, wire.PathHealth, "", nil, nil) == http.StatusTooManyRequests {
			limited++
		}
		if i%50 == 0 {
			if got := do(http.MethodGet, wire.PathNodes, admin.Secret, nil, nil); got != http.StatusOK {
				t.Errorf("admin call during the flood: %d, want 200", got)
			}
		}
	}
	if limited == 0 {
		t.Errorf("%d health checks from one address: none answered 429", l.UnauthBurst+50)
	}
	// Over HTTP/1.1: an HTTP/2 client refuses by itself to send more than
	// the server advertises.
	tr1 := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}} // loopback test server
	t.Cleanup(tr1.CloseIdleConnections)
	hc.Transport = tr1
	if got := do(http.MethodGet, wire.PathNodes, admin.Secret, map[string]string{"X-Big": strings.Repeat("x", 2*l.MaxHeaderBytes)}, nil); got != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("header of %d bytes: %d, want 431", 2*l.MaxHeaderBytes, got)
	}
	hc.Transport = tr
	body := strings.NewReader(`{"comment":"` + strings.Repeat("x", 2<<20) + `"}`)
	if got := do(http.MethodPost, wire.PathRoutes, admin.Secret, nil, body); got != http.StatusRequestEntityTooLarge {
		t.Errorf("2 MiB body: %d, want 413", got)
	}
}
