package coordclient

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/warrennet/warren/overlay/wire"
)

// Transport timeouts. A call's overall deadline comes from its context.
const (
	dialTimeout         = 10 * time.Second
	tlsHandshakeTimeout = 10 * time.Second
	idleConnTimeout     = 90 * time.Second
)

// newTransport returns a transport to one coordinator. With a pin it
// accepts exactly the certificate whose SHA-256 is pin and nothing else;
// without one it verifies against the system roots.
//
// It reads no environment: proxies are not consulted.
func newTransport(pin string) *http.Transport {
	d := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		DialContext:           d.DialContext,
		TLSClientConfig:       tlsConfig(pin),
		TLSHandshakeTimeout:   tlsHandshakeTimeout,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4,
		IdleConnTimeout:       idleConnTimeout,
		ExpectContinueTimeout: time.Second,
	}
}

func tlsConfig(pin string) *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if pin == "" {
		return c
	}
	pin = strings.ToLower(pin)
	// The pin replaces chain and name verification: the token names the
	// exact certificate, which is typically self-signed.
	c.InsecureSkipVerify = true
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("coordinator sent no certificate")
		}
		sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
		if got := hex.EncodeToString(sum[:]); got != pin {
			return &PinError{Want: pin, Got: got}
		}
		return nil
	}
	return c
}

// newHTTPClient wraps t in a client that never follows redirects: a
// redirect would carry the bearer secret somewhere the token does not name.
func newHTTPClient(t *http.Transport) *http.Client {
	return &http.Client{
		Transport: t,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// baseURL checks a coordinator URL and pin and returns the URL without a
// trailing slash.
func baseURL(raw, pin string) (string, error) {
	if err := wire.ValidateCoordinatorURL(raw); err != nil {
		return "", err
	}
	if pin != "" && !isPin(pin) {
		return "", fmt.Errorf("certificate pin is not a SHA-256 in hex")
	}
	return strings.TrimSuffix(raw, "/"), nil
}

func isPin(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}
