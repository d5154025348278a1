package coordclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// maxResponse bounds a decoded 2xx body (an export of a large coordinator
// stays well below it).
const maxResponse = 64 << 20

// errCallTimeout is the cause of a call's own deadline, as opposed to the
// caller's.
var errCallTimeout = errors.New("call timeout")

// caller makes JSON calls to one coordinator with one bearer secret.
type caller struct {
	base    string // scheme://host:port, no trailing slash
	secret  string // never logged, never put in an error
	hc      *http.Client
	timeout time.Duration // per call; zero means only the context bounds it
}

// do sends in (if not nil) as JSON and decodes a 2xx body into out (if not
// nil). A non-2xx answer with a wire.Error body returns a *wire.Error.
// When ctx ends first, do returns ctx.Err().
func (c *caller) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encoding %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	cctx := ctx
	if c.timeout > 0 {
		var cancel context.CancelFunc
		cctx, cancel = context.WithTimeoutCause(ctx, c.timeout, errCallTimeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(cctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("building %s %s: %w", method, path, err)
	}
	if c.secret != "" {
		req.Header.Set("Authorization", "Bearer "+c.secret)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(context.Cause(cctx), errCallTimeout) {
			return &reachError{url: c.base, cause: fmt.Sprintf("no answer within %v", c.timeout), err: err}
		}
		return transportError(c.base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return responseError(c.base, resp)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponse)).Decode(out); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("reading the coordinator's answer to %s %s: %w", method, path, err)
	}
	return nil
}
