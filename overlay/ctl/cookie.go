package ctl

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/warrennet/warren/overlay/atomicfile"
)

// Where the kernel does not say who is calling (Windows: no peer
// credentials on its unix sockets), a caller proves instead that it can
// read a file only the daemon's user can: at start the daemon writes 32
// random bytes, hex, to SOCKET.cookie (mode 0600, in the socket's
// directory, which the userspace daemon keeps private), and a client that
// can read that file sends it in the cookieHeader of every request. The
// server takes a matching cookie (compared in constant time) as a call
// from the daemon's own user, and nothing more: the operator cannot be
// told apart there. Where peer credentials exist no cookie is written and
// the header is ignored.

// cookieHeader carries the cookie.
const cookieHeader = "Warren-Cookie"

// cookiePath is where the daemon on the socket at path keeps its cookie.
func cookiePath(socket string) string { return socket + ".cookie" }

// writeCookie makes a fresh cookie for the socket ln listens on and
// writes it beside the socket; remove deletes it.
func writeCookie(ln net.Listener) (cookie string, remove func(), err error) {
	ua, ok := ln.Addr().(*net.UnixAddr)
	if !ok || ua.Name == "" {
		return "", nil, fmt.Errorf("no socket path to keep the control cookie beside (%v)", ln.Addr())
	}
	b := make([]byte, 32)
	rand.Read(b)
	cookie = hex.EncodeToString(b)
	path := cookiePath(ua.Name)
	if err := atomicfile.WriteFile(path, []byte(cookie+"\n"), 0o600); err != nil {
		return "", nil, fmt.Errorf("writing the control cookie: %w", err)
	}
	return cookie, func() { os.Remove(path) }, nil
}

// readCookie returns the cookie beside the socket, or "" when there is
// none this user may read.
func readCookie(socket string) string {
	b, err := os.ReadFile(cookiePath(socket))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// cookieCaller reports whether r carries the server's cookie; the caller
// is then the daemon's own user.
func (s *Server) cookieCaller(r *http.Request) (Caller, bool) {
	got := r.Header.Get(cookieHeader)
	if s.cookie == "" || got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.cookie)) != 1 {
		return Caller{}, false
	}
	return Caller{UID: s.euid, GID: s.euid, PID: -1}, true
}
