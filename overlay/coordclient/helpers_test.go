package coordclient_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/warrennet/warren/internal/testutil"
	"github.com/warrennet/warren/overlay/coordclient"
	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/test/coordtest"
)

// coordinator is a real coordinator behind a fault injector, with the
// credentials of the nodes nodeConfig enrolled.
type coordinator struct {
	*coordtest.Server
	faults *coordtest.Faults

	mu    sync.Mutex
	creds map[string]string // by node name; guarded by mu
}

// newCoordinator starts a coordinator for one test. Heartbeats default to
// a ping every 20 ms with a 1 s timeout.
func newCoordinator(t *testing.T, o coordtest.Options) *coordinator {
	t.Helper()
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval, o.HeartbeatTimeout = 20*time.Millisecond, time.Second
	}
	f := coordtest.NewFaults()
	o.Wrap = f.Wrap
	return &coordinator{Server: coordtest.Start(t, o), faults: f, creds: map[string]string{}}
}

// Connects returns how many control streams the coordinator accepted
// from the named node.
func (c *coordinator) Connects(name string) int {
	c.mu.Lock()
	cred := c.creds[name]
	c.mu.Unlock()
	return c.faults.Connects(cred)
}

// Inject writes m on the named node's open streams and returns on how many.
func (c *coordinator) Inject(name string, m any) (int, error) {
	c.mu.Lock()
	cred := c.creds[name]
	c.mu.Unlock()
	return c.faults.Inject(cred, m)
}

// caughtUp reports whether the named node acknowledged the coordinator's
// current state version.
func (c *coordinator) caughtUp(name string) bool {
	return c.Acked(name) == c.Coord.Version()
}

// waitFor polls cond until it holds, failing the test after a deadline.
// An explain function, if given, adds context to the failure.
func waitFor(t *testing.T, what string, cond func() bool, explain ...func() string) {
	t.Helper()
	testutil.WaitFor(t, what, cond, explain...)
}

// checkNoLeaks waits until no goroutine runs coordclient code or holds a
// client-side HTTP connection, and fails the test if some remain. The
// coordinator's goroutines are not counted.
func checkNoLeaks(t *testing.T) {
	t.Helper()
	testutil.NoLeaks(t, "/overlay/coordclient.", "net/http.(*persistConn)", "net/http.(*http2ClientConn)", "net/http.(*http2clientConnReadLoop)")
}

// syncBuffer is a bytes.Buffer safe for a logger and a test to share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// recorder collects what a session hands its callbacks.
type recorder struct {
	mu      sync.Mutex
	applied []*wire.NetMap
	states  []state
	denials []wire.FlowRecord
	// fail, if set, decides whether Apply fails for a netmap.
	fail func(nm *wire.NetMap) error
}

type state struct {
	connected bool
	err       error
}

func (s state) String() string { return fmt.Sprintf("{%v %v}", s.connected, s.err) }

func (r *recorder) apply(_ context.Context, nm *wire.NetMap) error {
	r.mu.Lock()
	fail := r.fail
	r.mu.Unlock()
	if fail != nil {
		if err := fail(nm); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applied = append(r.applied, nm)
	return nil
}

func (r *recorder) onState(connected bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.states = append(r.states, state{connected, err})
}

func (r *recorder) onDenial(rec wire.FlowRecord) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.denials = append(r.denials, rec)
}

func (r *recorder) denialLog() []wire.FlowRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]wire.FlowRecord(nil), r.denials...)
}

// last returns the last netmap applied, or nil.
func (r *recorder) last() *wire.NetMap {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.applied) == 0 {
		return nil
	}
	return r.applied[len(r.applied)-1]
}

func (r *recorder) appliedVersion() uint64 {
	if nm := r.last(); nm != nil {
		return nm.Version
	}
	return 0
}

func (r *recorder) stateLog() []state {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]state(nil), r.states...)
}

// hasState reports whether OnState was called with connected and an error
// for which match holds (nil match: any).
func (r *recorder) hasState(connected bool, match func(error) bool) bool {
	for _, s := range r.stateLog() {
		if s.connected == connected && (match == nil || match(s.err)) {
			return true
		}
	}
	return false
}

// running is a Session.Run in progress.
type running struct {
	cancel context.CancelFunc
	done   chan error
}

// stop cancels Run and returns its error, failing the test if it does not
// return promptly.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	return r.wait(t)
}

func (r *running) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err // later calls see it too
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Session.Run did not return")
		return nil
	}
}

// nodeConfig enrolls a client on co and returns a session config for it,
// with short heartbeats and backoff.
func nodeConfig(t *testing.T, co *coordinator, name string, rec *recorder) coordclient.SessionConfig {
	t.Helper()
	resp := co.Enroll(t, wire.RoleClient, name, mustKey(t).PublicKey())
	co.mu.Lock()
	co.creds[name] = resp.Credential
	co.mu.Unlock()
	return coordclient.SessionConfig{
		URL:               co.URL,
		Pin:               co.Pin,
		Credential:        resp.Credential,
		Apply:             rec.apply,
		OnState:           rec.onState,
		OnDenial:          rec.onDenial,
		HeartbeatInterval: 20 * time.Millisecond,
		HeartbeatTimeout:  300 * time.Millisecond,
		Backoff:           coordclient.Backoff{Min: 5 * time.Millisecond, Max: 50 * time.Millisecond},
	}
}

// start runs a session until the test ends.
func start(t *testing.T, cfg coordclient.SessionConfig) *running {
	t.Helper()
	s, err := coordclient.NewSession(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// mustKey returns a fresh private key: the coordinator refuses to enroll
// one public key twice.
func mustKey(t *testing.T) wire.Key {
	t.Helper()
	var k wire.Key
	if _, err := rand.Read(k[:]); err != nil {
		t.Fatal(err)
	}
	k[0] &= 248
	k[31] = k[31]&127 | 64
	return k
}

func newAdmin(t *testing.T, tok wire.Token, opts ...coordclient.Option) *coordclient.Admin {
	t.Helper()
	a, err := coordclient.NewAdmin(tok, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}
