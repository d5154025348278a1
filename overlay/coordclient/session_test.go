package coordclient_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/warrennet/warren/overlay/coordclient"
	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/test/coordtest"
)

func TestSessionAppliesAndAcks(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts coordtest.Options
	}{
		{"https-h2", coordtest.Options{}},
		{"plain-http1", coordtest.Options{PlainHTTP: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			co := newCoordinator(t, tc.opts)
			co.Enroll(t, wire.RoleConnector, "office", mustKey(t).PublicKey())
			rec := &recorder{}
			cfg := nodeConfig(t, co, "laptop", rec)
			run := start(t, cfg)

			v := co.Coord.Version()
			waitFor(t, "the first netmap to be applied", func() bool { return rec.appliedVersion() == v })
			if got := rec.last().Self.Name; got != "laptop" {
				t.Errorf("netmap Self.Name = %q, want laptop", got)
			}
			waitFor(t, "the ack", func() bool { return co.Acked("laptop") == v })
			if !rec.hasState(true, nil) {
				t.Error("OnState(true, nil) was not called")
			}

			// A change on the coordinator is pushed and acked.
			a := newAdmin(t, co.Admin)
			if _, err := a.AddRoute(context.Background(), wire.AddRouteRequest{Prefix: "192.168.0.0/24", Connector: "office"}); err != nil {
				t.Fatal(err)
			}
			v2 := co.Coord.Version()
			waitFor(t, "the pushed netmap", func() bool { return rec.appliedVersion() == v2 })
			if got := rec.last().Routes; len(got) != 1 || got[0].Prefix != netip.MustParsePrefix("192.168.0.0/24") {
				t.Errorf("pushed netmap routes = %+v, want the new route", got)
			}
			waitFor(t, "the ack of the pushed netmap", func() bool { return co.Acked("laptop") == v2 })

			// Pings keep the stream alive past several heartbeat timeouts.
			connects := co.Connects("laptop")
			healthySince := time.Now()
			waitFor(t, "several heartbeat timeouts to pass", func() bool {
				return time.Since(healthySince) > 3*cfg.HeartbeatTimeout
			})
			if got := co.Connects("laptop"); got != connects {
				t.Errorf("stream reconnected %d times while healthy", got-connects)
			}

			if err := run.stop(t); !errors.Is(err, context.Canceled) {
				t.Errorf("Run after cancel = %v, want context.Canceled", err)
			}
			a.Close()
			checkNoLeaks(t)
		})
	}
}

func TestSessionReconnectsAfterDrop(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  coordtest.Options
		cut   bool   // cut the stream mid-body instead of ending it
		state string // what OnState reports
	}{
		{"drop-h2", coordtest.Options{}, false, "the coordinator closed the control stream"},
		{"cut-h2", coordtest.Options{}, true, "reading the control stream: stream error"},
		{"cut-http1", coordtest.Options{PlainHTTP: true}, true, "reading the control stream: unexpected EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			co := newCoordinator(t, tc.opts)
			rec := &recorder{}
			start(t, nodeConfig(t, co, "laptop", rec))
			waitFor(t, "the first stream", func() bool { return co.caughtUp("laptop") && co.Online("laptop") })

			for i := 2; i <= 4; i++ {
				end, what := co.faults.DropStreams, "DropStreams"
				if tc.cut {
					end, what = co.faults.CutStreams, "CutStreams"
				}
				if n := end(); n != 1 {
					t.Fatalf("%s ended %d streams, want 1", what, n)
				}
				waitFor(t, "a reconnect", func() bool { return co.Connects("laptop") == i && co.Online("laptop") })
				// A change made after the reconnect arrives on the new stream.
				v := co.Push(t)
				waitFor(t, "the netmap on the new stream", func() bool { return co.Acked("laptop") == v })
			}
			if !rec.hasState(false, func(err error) bool {
				return err != nil && strings.Contains(err.Error(), tc.state)
			}) {
				t.Errorf("OnState never reported the ended stream; states: %+v", rec.stateLog())

			}
		})
	}
}

func TestSessionHeartbeatTimeout(t *testing.T) {
	co := newCoordinator(t, coordtest.Options{HeartbeatInterval: 20 * time.Millisecond, HeartbeatTimeout: 5 * time.Second})
	rec := &recorder{}
	cfg := nodeConfig(t, co, "laptop", rec)
	cfg.HeartbeatTimeout = 150 * time.Millisecond
	start(t, cfg)
	waitFor(t, "the first stream", func() bool { return co.caughtUp("laptop") })

	co.faults.Silence(true)
	silentAt := time.Now()
	waitFor(t, "the silent stream to be given up", func() bool {
		return rec.hasState(false, func(err error) bool {
			return err != nil && strings.HasPrefix(err.Error(), "the coordinator sent nothing for ")
		})
	})
	// The last ping may have come up to one server interval before the
	// silence began.
	if d, min := time.Since(silentAt), cfg.HeartbeatTimeout-20*time.Millisecond; d < min {
		t.Errorf("gave up %v into the silence, before the %v timeout", d, cfg.HeartbeatTimeout)
	}
	waitFor(t, "a reconnect", func() bool { return co.Connects("laptop") >= 2 })

	co.faults.Silence(false)
	v := co.Push(t)
	waitFor(t, "the netmap after the silence", func() bool { return co.Acked("laptop") == v })
}

func TestSessionRevoked(t *testing.T) {
	co := newCoordinator(t, coordtest.Options{})
	rec := &recorder{}
	run := start(t, nodeConfig(t, co, "laptop", rec))
	waitFor(t, "the first stream", func() bool { return co.caughtUp("laptop") })

	a := newAdmin(t, co.Admin)
	if err := a.RemoveNode(context.Background(), "laptop"); err != nil {
		t.Fatal(err)
	}
	a.Close()
	err := run.wait(t)
	if !errors.Is(err, coordclient.ErrRevoked) {
		t.Fatalf("Run = %v, want ErrRevoked", err)
	}
	if want := "this node has been removed by an admin; enroll it again with a new token"; err.Error() != want {
		t.Errorf("message %q, want %q", err.Error(), want)
	}
	if !rec.hasState(false, func(err error) bool { return errors.Is(err, coordclient.ErrRevoked) }) {
		t.Errorf("OnState never reported ErrRevoked; states: %+v", rec.stateLog())
	}
	checkNoLeaks(t)
}

func TestSessionUnknownCredential(t *testing.T) {
	co := newCoordinator(t, coordtest.Options{PlainHTTP: true})
	rec := &recorder{}
	cfg := nodeConfig(t, co, "laptop", rec)
	cfg.Credential = "not-a-credential"
	if err := start(t, cfg).wait(t); !errors.Is(err, coordclient.ErrRevoked) {
		t.Fatalf("Run = %v, want ErrRevoked", err)
	}
	if rec.last() != nil {
		t.Error("a netmap was applied")
	}
}

func TestSessionRetriesOtherErrors(t *testing.T) {
	// Anything but a refused credential is retried: a 401 with another
	// code, a 503, an unreachable coordinator.
	co := newCoordinator(t, coordtest.Options{})
	rec := &recorder{}
	cfg := nodeConfig(t, co, "laptop", rec)
	co.faults.FailNext("POST", wire.PathStream, 1, 503, wire.Error{Message: "the coordinator is shutting down", Code: wire.CodeUnavailable})
	start(t, cfg)
	waitFor(t, "the netmap after the 503", func() bool { return co.caughtUp("laptop") })
	if !rec.hasState(false, func(err error) bool {
		var we *wire.Error
		return errors.As(err, &we) && we.Code == wire.CodeUnavailable
	}) {
		t.Errorf("OnState never reported the 503; states: %+v", rec.stateLog())
	}
}

func TestSessionUnreachableKeepsTrying(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	l.Close()
	rec := &recorder{}
	logs := &syncBuffer{}
	run := start(t, coordclient.SessionConfig{
		URL:        url,
		Credential: "node-credential-secret-value",
		Apply:      rec.apply,
		OnState:    rec.onState,
		Logger:     slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Backoff:    coordclient.Backoff{Min: time.Millisecond, Max: 5 * time.Millisecond},
	})
	want := "cannot reach the coordinator at " + url + ": connection refused"
	waitFor(t, "three failed attempts", func() bool {
		n := 0
		for _, s := range rec.stateLog() {
			if !s.connected && s.err != nil && s.err.Error() == want && errors.Is(s.err, coordclient.ErrUnreachable) {
				n++
			}
		}
		return n >= 3
	})
	if err := run.stop(t); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	if strings.Contains(logs.String(), "node-credential-secret-value") {
		t.Errorf("the credential was logged:\n%s", logs)
	}
	if !strings.Contains(logs.String(), "connection refused") {
		t.Errorf("the failure was not logged:\n%s", logs)
	}
	checkNoLeaks(t)
}

func TestSessionApplyErrorNotAcked(t *testing.T) {
	co := newCoordinator(t, coordtest.Options{})
	rec := &recorder{}
	cfg := nodeConfig(t, co, "laptop", rec)
	logs := &syncBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	cfg.Backoff = coordclient.Backoff{Min: time.Millisecond, Max: 2 * time.Millisecond}

	// The 20th failure waits until the test has looked for an ack; the
	// stream's pings go on meanwhile.
	failures := 0
	failing := make(chan time.Time, 1)
	checked := make(chan struct{})
	rec.fail = func(*wire.NetMap) error {
		failures++
		if failures == 20 {
			failing <- time.Now()
			<-checked
		}
		if failures <= 20 {
			return errors.New("netlink is busy")
		}
		return nil
	}
	start(t, cfg)
	v := co.Coord.Version()
	// Once the coordinator has heard a ping sent well after an Apply
	// failed, it would have heard an ack sent for it too.
	after := (<-failing).Add(3 * cfg.HeartbeatInterval)
	waitFor(t, "a ping after the failures", func() bool {
		for _, n := range co.Coord.Nodes() {
			if n.Name == "laptop" && n.LastSeen != nil && n.LastSeen.After(after) {
				return true
			}
		}
		return false
	})
	if got := co.Acked("laptop"); got != 0 {
		t.Errorf("the coordinator saw an ack of v%d while Apply failed", got)
	}
	close(checked)
	waitFor(t, "Apply to succeed on a retry", func() bool { return rec.appliedVersion() == v })
	waitFor(t, "the ack", func() bool { return co.Acked("laptop") == v })
	if failures != 21 {
		t.Errorf("Apply called %d times, want 21", failures)
	}
	if n := strings.Count(logs.String(), "netlink is busy"); n != 1 {
		t.Errorf("Apply error logged %d times, want once (rate-limited):\n%s", n, logs)
	}
	if strings.Contains(logs.String(), cfg.Credential) {
		t.Errorf("the credential was logged:\n%s", logs)
	}
}

func TestSessionApplyGetsNewest(t *testing.T) {
	// Netmaps that arrive while Apply runs are coalesced: the next call
	// gets the newest, and the stream stays healthy meanwhile.
	co := newCoordinator(t, coordtest.Options{})
	rec := &recorder{}
	cfg := nodeConfig(t, co, "laptop", rec)
	cfg.HeartbeatTimeout = 100 * time.Millisecond
	entered := make(chan uint64, 16)
	release := make(chan struct{})
	var calls []uint64
	rec.fail = func(nm *wire.NetMap) error {
		calls = append(calls, nm.Version)
		entered <- nm.Version
		if len(calls) == 1 {
			<-release
		}
		return nil
	}
	start(t, cfg)
	first := <-entered
	co.Push(t)
	co.Push(t)
	last := co.Push(t)
	// Outlast the heartbeat timeout inside Apply: pings still count.
	slowSince := time.Now()
	waitFor(t, "Apply to be slow for a while", func() bool { return time.Since(slowSince) > 3*cfg.HeartbeatTimeout })
	close(release)
	waitFor(t, "the newest netmap", func() bool { return co.Acked("laptop") == last })
	if len(calls) != 2 || calls[0] != first || calls[1] != last {
		t.Errorf("Apply saw versions %v, want [%d %d]", calls, first, last)
	}
	if got := co.Connects("laptop"); got != 1 {
		t.Errorf("%d connects, want 1: a slow Apply must not look like a dead stream", got)
	}
}

func TestSessionCancelIsClean(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts coordtest.Options
	}{
		{"https-h2", coordtest.Options{}},
		{"plain-http1", coordtest.Options{PlainHTTP: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			co := newCoordinator(t, tc.opts)
			rec := &recorder{}
			// Cancel while Apply is blocked, while connected, and while
			// waiting to reconnect.
			cfg := nodeConfig(t, co, "laptop", rec)
			run := start(t, cfg)
			waitFor(t, "the first stream", func() bool { return co.caughtUp("laptop") })
			if err := run.stop(t); !errors.Is(err, context.Canceled) {
				t.Errorf("Run = %v, want context.Canceled", err)
			}
			waitFor(t, "the coordinator to see the node leave", func() bool { return !co.Online("laptop") })
			checkNoLeaks(t)

			blocked := make(chan struct{})
			cfg.Apply = func(ctx context.Context, _ *wire.NetMap) error {
				close(blocked)
				<-ctx.Done()
				return ctx.Err()
			}
			run = start(t, cfg)
			<-blocked
			if err := run.stop(t); !errors.Is(err, context.Canceled) {
				t.Errorf("Run = %v, want context.Canceled", err)
			}
			checkNoLeaks(t)

			cfg.Apply = rec.apply
			cfg.Backoff = coordclient.Backoff{Min: 24 * time.Hour, Max: 24 * time.Hour}
			co.faults.FailNext("POST", wire.PathStream, 1, 503, wire.Error{Message: "busy", Code: wire.CodeUnavailable})
			attempts := co.faults.Requests("POST", wire.PathStream)
			run = start(t, cfg)
			waitFor(t, "the failed attempt", func() bool {
				return rec.hasState(false, func(err error) bool { return err != nil && err.Error() == "busy" })
			})
			// The next attempt waits for the backoff: a random delay up
			// to a day, almost surely longer than this.
			<-time.After(300 * time.Millisecond)
			if got := co.faults.Requests("POST", wire.PathStream) - attempts; got != 1 {
				t.Errorf("%d stream requests during a day's backoff, want 1", got)
			}
			if err := run.stop(t); !errors.Is(err, context.Canceled) {
				t.Errorf("Run = %v, want context.Canceled", err)
			}
			checkNoLeaks(t)
		})
	}
}

func TestSessionHalfDuplexServer(t *testing.T) {
	// A plain HTTP/1.1 handler that answers without enabling full duplex
	// would first drain the request body, which a stream never ends. The
	// session sends "Connection: close", so the server skips the drain
	// and the refusal comes through.
	srv := newRawServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":"unknown node credential","code":"unauthorized"}`)
	})
	rec := &recorder{}
	run := start(t, coordclient.SessionConfig{
		URL:        srv.URL,
		Credential: "node-credential",
		Apply:      rec.apply,
	})
	if err := run.wait(t); !errors.Is(err, coordclient.ErrRevoked) {
		t.Errorf("Run = %v, want ErrRevoked", err)
	}
	checkNoLeaks(t)
}

func TestSessionNoAnswer(t *testing.T) {
	// A coordinator that accepts the connection but never answers is
	// given up on after the heartbeat timeout, and tried again.
	stop := make(chan struct{})
	srv := newRawServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stop:
		case <-r.Context().Done():
		}
	})
	defer close(stop)
	rec := &recorder{}
	run := start(t, coordclient.SessionConfig{
		URL:               srv.URL,
		Credential:        "node-credential",
		Apply:             rec.apply,
		OnState:           rec.onState,
		HeartbeatInterval: 20 * time.Millisecond,
		HeartbeatTimeout:  100 * time.Millisecond,
		Backoff:           coordclient.Backoff{Min: time.Millisecond, Max: 5 * time.Millisecond},
	})
	want := "cannot reach the coordinator at " + srv.URL + ": no answer within 100ms"
	waitFor(t, "two attempts to time out", func() bool {
		n := 0
		for _, s := range rec.stateLog() {
			if s.err != nil && s.err.Error() == want && errors.Is(s.err, coordclient.ErrUnreachable) {
				n++
			}
		}
		return n >= 2
	}, func() string { return fmt.Sprintf("states: %v", rec.stateLog()) })
	if err := run.stop(t); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	checkNoLeaks(t)
}

func TestNewSessionValidates(t *testing.T) {
	ok := coordclient.SessionConfig{
		URL:        "https://198.51.100.10:8443",
		Credential: "c",
		Apply:      func(context.Context, *wire.NetMap) error { return nil },
	}
	if _, err := coordclient.NewSession(ok); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	for name, mutate := range map[string]func(*coordclient.SessionConfig){
		"bad url":            func(c *coordclient.SessionConfig) { c.URL = "198.51.100.10:8443" },
		"bad pin":            func(c *coordclient.SessionConfig) { c.Pin = "xyz" },
		"no credential":      func(c *coordclient.SessionConfig) { c.Credential = "" },
		"no apply":           func(c *coordclient.SessionConfig) { c.Apply = nil },
		"timeout <= ping":    func(c *coordclient.SessionConfig) { c.HeartbeatInterval, c.HeartbeatTimeout = time.Second, time.Second },
		"negative heartbeat": func(c *coordclient.SessionConfig) { c.HeartbeatInterval = -1 },
		"backoff min > max": func(c *coordclient.SessionConfig) {
			c.Backoff = coordclient.Backoff{Min: time.Minute, Max: time.Second}
		},
	} {
		c := ok
		mutate(&c)
		if _, err := coordclient.NewSession(c); err == nil {
			t.Errorf("%s: config accepted", name)
		}
	}
}

// TestSessionDenialsAndUnknownMessages: denials a connector reports reach
// OnDenial; a message of a type the node does not know is skipped and the
// stream stays up; a malformed message of a known type ends the stream.
func TestSessionDenialsAndUnknownMessages(t *testing.T) {
	co := newCoordinator(t, coordtest.Options{})
	co.Enroll(t, wire.RoleConnector, "office", mustKey(t).PublicKey())
	rec := &recorder{}
	start(t, nodeConfig(t, co, "laptop", rec))
	waitFor(t, "the first stream", func() bool { return co.caughtUp("laptop") })

	inject := func(m any) {
		t.Helper()
		if n, err := co.Inject("laptop", m); n != 1 || err != nil {
			t.Fatalf("Inject = %d, %v; want 1 stream", n, err)
		}
	}
	inject(map[string]any{"type": "policy-hint", "hint": map[string]int{"x": 1}})
	inject(map[string]any{"type": "netmap-v2", "netmap": "not an object"})
	denial := wire.FlowRecord{
		ID: "c1-7", Connector: "office", User: "alice@example.com", Node: "laptop", Proto: wire.ProtoTCP,
		Dst: netip.MustParseAddrPort("192.168.0.10:8080"), Decision: wire.DecisionDeny,
		Reason: "denied by policy: no rule lets alice@example.com reach 192.168.0.10:8080/tcp",
		Start:  time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC), End: time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC),
	}
	co.ReportFlows(t, "office", denial)
	waitFor(t, "the denial", func() bool { return len(rec.denialLog()) == 1 })
	if got := rec.denialLog()[0]; got != denial {
		t.Errorf("OnDenial got %+v, want %+v", got, denial)
	}
	// The unknown messages did not end the stream: a netmap pushed after
	// them arrives on it.
	v := co.Push(t)
	waitFor(t, "the netmap after the unknown messages", func() bool { return co.Acked("laptop") == v })
	if got := co.Connects("laptop"); got != 1 {
		t.Errorf("the node connected %d times, want 1: an unknown message ended the stream", got)
	}

	// A denial without its record is a broken coordinator: the stream
	// ends and the node connects again.
	inject(map[string]any{"type": "denial"})
	waitFor(t, "a reconnect after the malformed denial", func() bool { return co.Connects("laptop") == 2 })
	if !rec.hasState(false, func(err error) bool {
		return err != nil && strings.Contains(err.Error(), "denial message without a record")
	}) {
		t.Errorf("OnState never reported the malformed denial; states: %+v", rec.stateLog())
	}
	if got := len(rec.denialLog()); got != 1 {
		t.Errorf("OnDenial called %d times, want 1", got)
	}
}

// TestSessionWake: a receive from Wake ends the wait to reconnect at
// once (the node's network changed), however long the backoff.
func TestSessionWake(t *testing.T) {
	co := newCoordinator(t, coordtest.Options{})
	rec := &recorder{}
	cfg := nodeConfig(t, co, "laptop", rec)
	cfg.Backoff = coordclient.Backoff{Min: 24 * time.Hour, Max: 24 * time.Hour}
	wake := make(chan struct{}, 1)
	cfg.Wake = wake
	co.faults.FailNext("POST", wire.PathStream, 1, 503, wire.Error{Message: "busy", Code: wire.CodeUnavailable})
	run := start(t, cfg)
	waitFor(t, "the failed attempt", func() bool {
		return rec.hasState(false, func(err error) bool { return err != nil && err.Error() == "busy" })
	})
	wake <- struct{}{}
	waitFor(t, "the stream, at once after the wake", func() bool { return co.caughtUp("laptop") })
	if err := run.stop(t); !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	checkNoLeaks(t)
}
