package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/warrennet/warren/internal/testutil"
	"github.com/warrennet/warren/overlay/coord/store"
	"github.com/warrennet/warren/overlay/wire"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type harness struct {
	t     *testing.T
	c     *Coordinator
	store store.Store
	clock *clock
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessWith(t, nil)
}

// newHarnessWith is newHarness with the config adjusted by adjust.
func newHarnessWith(t *testing.T, adjust func(*Config)) *harness {
	t.Helper()
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, t.TempDir()+"/coordinator.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clk := &clock{t: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
	cfg := Config{
		Store:             st,
		URL:               "https://198.51.100.10:8443",
		Pin:               "0000000000000000000000000000000000000000000000000000000000000000",
		RelayEndpoint:     "198.51.100.10:8443",
		HeartbeatInterval: 50 * time.Millisecond,
		HeartbeatTimeout:  300 * time.Millisecond,
		Now:               clk.Now,
		Rand:              testutil.Seeded(1),
	}
	if adjust != nil {
		adjust(&cfg)
	}
	c, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, c: c, store: st, clock: clk}
}

// token creates a token and returns its secret.
func (h *harness) token(role wire.Role, name string, reusable bool, expires time.Duration) string {
	h.t.Helper()
	resp, err := h.c.CreateToken(context.Background(), wire.CreateTokenRequest{Role: role, Name: name, Reusable: reusable, ExpiresIn: wire.Duration(expires)})
	if err != nil {
		h.t.Fatalf("CreateToken(%s, %s): %v", role, name, err)
	}
	tok, err := wire.ParseToken(resp.Token)
	if err != nil {
		h.t.Fatalf("ParseToken: %v", err)
	}
	return tok.Secret
}

var keyCounter struct {
	sync.Mutex
	n byte
}

func testKey() wire.Key {
	keyCounter.Lock()
	defer keyCounter.Unlock()
	keyCounter.n++
	var k wire.Key
	k[0], k[31] = keyCounter.n, 0x42
	return k
}

// enroll enrolls a node with a fresh single-use token named name.
func (h *harness) enroll(role wire.Role, name string) wire.EnrollResponse {
	h.t.Helper()
	resp, err := h.c.Enroll(context.Background(), h.token(role, name, false, 0), wire.EnrollRequest{PublicKey: testKey()})
	if err != nil {
		h.t.Fatalf("Enroll(%s): %v", name, err)
	}
	return resp
}

// fakeConn is an in-memory NodeConn: what the coordinator sends arrives on
// out; what the test puts on in, the coordinator receives.
type fakeConn struct {
	// silent stops the fake from answering heartbeats.
	silent bool
	out    chan *wire.StreamMessage
	in     chan *wire.StreamMessage
	closed chan struct{}
	once   sync.Once
}

func newFakeConn() *fakeConn {
	return &fakeConn{out: make(chan *wire.StreamMessage, 64), in: make(chan *wire.StreamMessage, 64), closed: make(chan struct{})}
}

func (f *fakeConn) Send(msg []byte) error {
	m := new(wire.StreamMessage)
	if err := json.Unmarshal(msg, m); err != nil {
		return fmt.Errorf("fake node: decoding %s: %w", msg, err)
	}
	if m.Type == wire.MsgPing && !f.silent {
		f.in <- &wire.StreamMessage{Type: wire.MsgPing}
		return nil
	}
	select {
	case f.out <- m:
		return nil
	case <-time.After(time.Second):
		return errors.New("fake node stopped reading")
	}
}

func (f *fakeConn) Recv() (*wire.StreamMessage, error) {
	select {
	case m := <-f.in:
		return m, nil
	case <-f.closed:
		return nil, io.EOF
	}
}

func (f *fakeConn) Close() error {
	f.once.Do(func() { close(f.closed) })
	return nil
}

// serve runs a stream for node until the test ends; the returned channel
// yields ServeStream's result.
func (h *harness) serve(node wire.Node, conn *fakeConn) <-chan error {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		done <- h.c.ServeStream(ctx, node, conn)
	}()
	h.t.Cleanup(func() {
		cancel()
		<-finished
	})
	return done
}

// nextNetMap waits for the next netmap on conn, skipping pings.
func nextNetMap(t *testing.T, conn *fakeConn) *wire.NetMap {
	t.Helper()
	deadline := time.After(2 * time.Second)
	for {
		select {
		case m := <-conn.out:
			if m.Type == wire.MsgNetMap {
				return m.NetMap
			}
		case <-deadline:
			t.Fatal("no netmap within 2s")
			return nil
		}
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true within %v", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// netipEqual lets go-cmp compare netip values, whose fields are unexported.
var netipEqual = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})
