package coordclient

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"

	"github.com/warrennet/warren/overlay/wire"
)

// ErrRevoked is returned by Session.Run when the coordinator refuses the
// node's credential: an admin removed the node or revoked it. Retrying
// cannot help; the node must enroll again.
var ErrRevoked = errors.New("this node has been removed by an admin; enroll it again with a new token")

// ErrUnreachable matches (with errors.Is) every error reporting that the
// coordinator could not be reached or did not answer in time. The error's
// own message says where and why, in one line.
var ErrUnreachable = errors.New("cannot reach the coordinator")

// PinError reports a coordinator whose leaf certificate does not match the
// token's pin. Want and Got are the full lowercase hex SHA-256 digests.
type PinError struct {
	Want string
	Got  string
}

func (e *PinError) Error() string {
	return fmt.Sprintf("coordinator certificate does not match the token's pin (expected sha256 %s…, got %s…); "+
		"the token is for a different coordinator or the certificate changed", shortPin(e.Want), shortPin(e.Got))
}

// shortPin is how many hex digits of a pin a message shows: enough to tell
// two certificates apart by eye.
func shortPin(p string) string {
	const n = 16
	if len(p) > n {
		return p[:n]
	}
	return p
}

// reachError is a transport failure: no HTTP response came back.
type reachError struct {
	url   string // coordinator base URL, never holds secrets
	cause string // one short phrase: "connection refused"
	err   error
}

func (e *reachError) Error() string {
	return "cannot reach the coordinator at " + e.url + ": " + e.cause
}

func (e *reachError) Unwrap() []error { return []error{ErrUnreachable, e.err} }

// certError is a certificate the system roots do not vouch for (no pin).
type certError struct {
	url string
	err error
}

func (e *certError) Error() string {
	return "cannot verify the certificate of the coordinator at " + e.url + ": " + e.err.Error()
}

func (e *certError) Unwrap() error { return e.err }

// transportError turns an error from http.Client.Do into a one-line error:
// a pin mismatch as is, an untrusted certificate, or an unreachable
// coordinator with the root cause stripped of Go's "Post \"…\": dial tcp …"
// nesting.
func transportError(base string, err error) error {
	var pe *PinError
	if errors.As(err, &pe) {
		return pe
	}
	var cve *tls.CertificateVerificationError
	if errors.As(err, &cve) {
		return &certError{url: base, err: cve.Err}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return &reachError{url: base, cause: cause(err), err: err}
}

// cause names the root of a transport error in a few words.
func cause(err error) string {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		if dnsErr.IsNotFound {
			return "no such host " + dnsErr.Name
		}
		return "looking up " + dnsErr.Name + ": " + dnsErr.Err
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	var ne net.Error
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return "timed out"
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "the connection was closed before an answer"
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	return err.Error()
}

// maxErrorBody bounds how much of an error response is read.
const maxErrorBody = 64 << 10

// responseError reads a non-2xx response. A wire.Error body is returned as
// a *wire.Error; anything else (a proxy's page, a redirect) becomes an
// error naming the status.
func responseError(base string, resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	var we wire.Error
	if json.Unmarshal(body, &we) == nil && (we.Message != "" || we.Code != "") {
		if we.Message == "" {
			we.Message = "the coordinator answered " + resp.Status
		}
		return &we
	}
	msg := fmt.Sprintf("unexpected answer from the coordinator at %s: %s", base, resp.Status)
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "text/plain" {
		line, _, _ := bytes.Cut(bytes.TrimSpace(body), []byte("\n"))
		if s := strings.TrimSpace(string(line)); s != "" {
			if len(s) > 120 {
				s = s[:120] + "…"
			}
			msg += " (" + s + ")"
		}
	}
	return errors.New(msg)
}
