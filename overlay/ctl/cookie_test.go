package ctl

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCookie: where the kernel cannot say who calls, the cookie beside
// the socket makes a caller the daemon's own user, and nothing else
// does.
func TestCookie(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "warren.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cookie, remove, err := writeCookie(ln)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(cookiePath(sock))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("cookie file: %v, %v; want mode 0600", fi, err)
	}
	if got := readCookie(sock); got != cookie || len(cookie) != 64 {
		t.Errorf("readCookie = %q, want the %d-character cookie %q", got, len(cookie), cookie)
	}

	s := NewServer(&fakeBackend{}, nil)
	s.cookie = cookie
	var seen Caller
	h := s.guard(accessRoot, "bring the tunnel up", func(w http.ResponseWriter, r *http.Request) {
		seen, _ = CallerFrom(r.Context())
		w.WriteHeader(http.StatusNoContent)
	})
	unknown := context.WithValue(context.Background(), callerKey{}, callerInfo{err: errors.New("peer credentials are not supported on this system")})
	for _, tt := range []struct {
		name   string
		cookie string
		want   int
	}{
		{"the cookie", cookie, http.StatusNoContent},
		{"no cookie", "", http.StatusForbidden},
		{"a wrong cookie", strings.Repeat("0", 64), http.StatusForbidden},
		{"a prefix of it", cookie[:32], http.StatusForbidden},
	} {
		seen = Caller{}
		req := httptest.NewRequestWithContext(unknown, http.MethodPost, "/v1/up", nil)
		if tt.cookie != "" {
			req.Header.Set(cookieHeader, tt.cookie)
		}
		rec := httptest.NewRecorder()
		h(rec, req)
		if rec.Code != tt.want {
			t.Errorf("%s: status %d, want %d (%s)", tt.name, rec.Code, tt.want, rec.Body)
		}
		if tt.want == http.StatusNoContent && seen.UID != s.euid {
			t.Errorf("%s: the handler saw uid %d, want the daemon's %d", tt.name, seen.UID, s.euid)
		}
	}
	// Where the kernel does say who calls, a cookie changes nobody.
	s.cookie = ""
	req := httptest.NewRequestWithContext(unknown, http.MethodPost, "/v1/up", nil)
	req.Header.Set(cookieHeader, cookie)
	rec := httptest.NewRecorder()
	h(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Errorf("a cookie with no cookie set: status %d, want 403", rec.Code)
	}

	// The client sends what it can read.
	req, _ = http.NewRequest(http.MethodGet, "http://warren/v1/status", nil)
	NewClient(sock).prove(req)
	if req.Header.Get(cookieHeader) != cookie {
		t.Errorf("the client sent %q", req.Header.Get(cookieHeader))
	}
	remove()
	req, _ = http.NewRequest(http.MethodGet, "http://warren/v1/status", nil)
	NewClient(sock).prove(req)
	if got := req.Header.Get(cookieHeader); got != "" {
		t.Errorf("the client sent %q with no cookie file", got)
	}
}
