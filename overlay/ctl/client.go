package ctl

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"syscall"
)

// Client talks to a daemon's control socket.
type Client struct {
	path string
	hc   *http.Client
}

// NewClient returns a client of the socket at path. It does not connect.
func NewClient(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		Proxy: nil,
	}
	return &Client{path: path, hc: &http.Client{Transport: tr}}
}

// prove adds the daemon's cookie to req, where this user can read one
// (cookie.go).
func (c *Client) prove(req *http.Request) {
	if cookie := readCookie(c.path); cookie != "" {
		req.Header.Set(cookieHeader, cookie)
	}
}

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// ErrNoDaemon reports that no daemon answers on the socket.
var ErrNoDaemon = errors.New("the warren daemon is not running")

func (c *Client) do(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var buf bytes.Buffer
	if body != nil {
		if err := json.NewEncoder(&buf).Encode(body); err != nil {
			return nil, err
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://warren"+path, &buf)
	if err != nil {
		return nil, err
	}
	c.prove(req)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.connErr(err)
	}
	return resp, nil
}

// connErr says in one line why the socket could not be used.
func (c *Client) connErr(err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%w (no daemon on %s; start it with: sudo warren daemon, or warren daemon --userspace)", ErrNoDaemon, c.path)
	}
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("cannot use %s: permission denied (an older daemon? run as root)", c.path)
	}
	return fmt.Errorf("talking to the daemon on %s: %w", c.path, err)
}

// Status fetches the daemon's status.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	resp, err := c.do(ctx, http.MethodGet, pathStatus, nil)
	if err != nil {
		return nil, err
	}
	var st Status
	if err := answer(resp, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// Up asks the daemon to bring the tunnel up, calling progress for each
// step, and returns when it is up or with the reason it is not.
func (c *Client) Up(ctx context.Context, req UpRequest, progress func(Progress)) error {
	return c.stream(ctx, pathUp, req, progress)
}

// Login asks the daemon to log this machine out if it is enrolled, then in
// again by single sign-on, and to bring the tunnel up; progress is called
// for each step, one of which carries the login URL and code.
func (c *Client) Login(ctx context.Context, req UpRequest, progress func(Progress)) error {
	return c.stream(ctx, pathLogin, req, progress)
}

// Logout asks the daemon to take the tunnel down, have the coordinator
// remove this node and forget its identity.
func (c *Client) Logout(ctx context.Context) (*LogoutResult, error) {
	resp, err := c.do(ctx, http.MethodPost, pathLogout, nil)
	if err != nil {
		return nil, err
	}
	var res LogoutResult
	if err := answer(resp, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// Prefs fetches the daemon's settings.
func (c *Client) Prefs(ctx context.Context) (*Prefs, error) {
	resp, err := c.do(ctx, http.MethodGet, pathPrefs, nil)
	if err != nil {
		return nil, err
	}
	var p Prefs
	if err := answer(resp, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// SSHCert asks the daemon for an SSH certificate on the caller's key.
func (c *Client) SSHCert(ctx context.Context, req SSHCertRequest) (*SSHCertResult, error) {
	resp, err := c.do(ctx, http.MethodPost, pathSSHCert, req)
	if err != nil {
		return nil, err
	}
	var res SSHCertResult
	if err := answer(resp, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// stream posts req and reads the progress the daemon streams back until
// the last message.
func (c *Client) stream(ctx context.Context, path string, req UpRequest, progress func(Progress)) error {
	resp, err := c.do(ctx, http.MethodPost, path, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var p Progress
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			return fmt.Errorf("reading progress: %w", err)
		}
		if p.Done {
			if p.Error != "" {
				return errors.New(p.Error)
			}
			return nil
		}
		if progress != nil {
			progress(p)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading progress: %w", err)
	}
	return errors.New("the daemon stopped answering before the tunnel was up")
}

// Down asks the daemon to take the tunnel down.
func (c *Client) Down(ctx context.Context) error {
	resp, err := c.do(ctx, http.MethodPost, pathDown, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var p Progress
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		return fmt.Errorf("reading answer: %w", err)
	}
	if p.Error != "" {
		return errors.New(p.Error)
	}
	return nil
}

// Why asks the daemon what it does with traffic for q.IP, and what the
// access policy decides about the flow q names, if any.
func (c *Client) Why(ctx context.Context, q WhyQuery) (*Why, error) {
	v := url.Values{"ip": {q.IP.String()}}
	if q.Host != "" && !q.IP.IsValid() {
		v = url.Values{"host": {q.Host}}
	}
	if q.HasPort {
		v.Set("port", strconv.Itoa(int(q.Port)))
	}
	if q.Proto != "" {
		v.Set("proto", string(q.Proto))
	}
	resp, err := c.do(ctx, http.MethodGet, pathWhy+"?"+v.Encode(), nil)
	if err != nil {
		return nil, err
	}
	var w Why
	if err := answer(resp, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

// EditPrefs changes some of the daemon's settings and returns them all.
func (c *Client) EditPrefs(ctx context.Context, edit PrefsEdit) (*Prefs, error) {
	resp, err := c.do(ctx, http.MethodPost, pathPrefs, edit)
	if err != nil {
		return nil, err
	}
	var p Prefs
	if err := answer(resp, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// answer decodes a 200 answer into v, or turns any other into the error
// the daemon gave.
func answer(resp *http.Response, v any) error {
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var p Progress
		if err := json.NewDecoder(resp.Body).Decode(&p); err != nil || p.Error == "" {
			return fmt.Errorf("the daemon answered %s", resp.Status)
		}
		return errors.New(p.Error)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("reading answer: %w", err)
	}
	return nil
}
