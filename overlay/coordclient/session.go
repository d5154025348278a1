package coordclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/warrennet/warren/overlay/wire"
)

// SessionConfig configures a node's control stream.
type SessionConfig struct {
	// URL and Pin locate and authenticate the coordinator, as in a token.
	URL string
	Pin string
	// Credential is the node credential from enrollment. Never logged.
	Credential string
	// Apply makes nm the node's configuration. It is called from Run's
	// goroutine, one netmap at a time, newest first if several arrived
	// while it ran, and must be idempotent: the same netmap comes again
	// after every reconnect. A nil error acknowledges nm.Version to the
	// coordinator; an error is logged (rate-limited), not acknowledged,
	// and Apply is retried with backoff until it succeeds or a newer
	// netmap arrives. nm is Apply's to keep; the session never touches
	// it again. ctx ends when Run's context does.
	Apply func(ctx context.Context, nm *wire.NetMap) error
	// OnState, if set, is called from Run's goroutine with connected=true
	// when a stream is established, and with connected=false and the
	// reason whenever a stream ends or an attempt to open one fails,
	// including the last one before Run returns. It must not block long.
	OnState func(connected bool, err error)
	// OnDenial, if set, is called with each denial the coordinator
	// reports on the stream (a connector refused one of this client's
	// flows), in the order they arrive. It is called from the goroutine
	// that reads the stream, which reads nothing more until it returns:
	// it must not block.
	OnDenial func(wire.FlowRecord)
	// Logger receives the session's logs; nil discards them.
	Logger *slog.Logger
	// HeartbeatInterval is how often the node pings; zero means
	// wire.HeartbeatInterval.
	HeartbeatInterval time.Duration
	// HeartbeatTimeout is how long a silent stream (or a coordinator that
	// sends no response headers) is tolerated; zero means
	// wire.HeartbeatTimeout.
	HeartbeatTimeout time.Duration
	// Backoff paces reconnects and Apply retries.
	Backoff Backoff
	// Wake, if set, ends a wait between attempts to open the stream at
	// once when it receives: the node's network changed, so the
	// coordinator may be reachable now.
	Wake <-chan struct{}
}

// Validate checks the configuration.
func (c SessionConfig) Validate() error {
	if _, err := baseURL(c.URL, c.Pin); err != nil {
		return err
	}
	if c.Credential == "" {
		return errors.New("node credential is missing")
	}
	if c.Apply == nil {
		return errors.New("session has no Apply function")
	}
	if c.HeartbeatInterval < 0 || c.HeartbeatTimeout < 0 {
		return errors.New("heartbeat durations must not be negative")
	}
	d := c.withDefaults()
	if d.HeartbeatTimeout <= d.HeartbeatInterval {
		return fmt.Errorf("heartbeat timeout %v must exceed the interval %v", d.HeartbeatTimeout, d.HeartbeatInterval)
	}
	return c.Backoff.Validate()
}

func (c SessionConfig) withDefaults() SessionConfig {
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = wire.HeartbeatInterval
	}
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = wire.HeartbeatTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Backoff = c.Backoff.withDefaults()
	return c
}

// Session keeps a node's control stream to the coordinator open: it
// receives netmaps, hands each to Apply, acknowledges what Apply accepted,
// and reconnects after any failure.
type Session struct {
	cfg  SessionConfig // defaults applied
	base string
	log  *slog.Logger
}

// NewSession checks cfg and returns a session. It does not connect.
func NewSession(cfg SessionConfig) (*Session, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("control session: %w", err)
	}
	cfg = cfg.withDefaults()
	base, _ := baseURL(cfg.URL, cfg.Pin)
	return &Session{cfg: cfg, base: base, log: cfg.Logger.With("coordinator", base)}, nil
}

// Run holds the control stream open until ctx ends, reconnecting with
// exponential backoff and full jitter after every failure. It returns
// ctx.Err() after ctx ends, or ErrRevoked when the coordinator refuses the
// node's credential. Every goroutine Run starts has stopped when it
// returns. Run must not be called concurrently on one Session.
func (s *Session) Run(ctx context.Context) error {
	t := newTransport(s.cfg.Pin)
	// One connection per stream: a reconnect after a silent stream must
	// not be multiplexed onto the HTTP/2 connection that just went dead,
	// and a finished stream's connection closes itself.
	t.DisableKeepAlives = true
	defer t.CloseIdleConnections()
	hc := newHTTPClient(t)
	applyLog := &rateLimiter{every: applyLogEvery}

	failures := 0
	for {
		up, err := s.stream(ctx, hc, applyLog)
		if ctx.Err() != nil {
			s.setState(false, ctx.Err())
			return ctx.Err()
		}
		if errors.Is(err, ErrRevoked) {
			s.log.Error("coordinator refused the node credential; stopping", "err", err)
			s.setState(false, err)
			return err
		}
		failures = s.cfg.Backoff.failuresAfter(failures, up, time.Now())
		wait := s.cfg.Backoff.delay(failures)
		failures++
		if up.IsZero() {
			s.log.Warn("cannot open the control stream", "err", err, "retry_in", wait.Round(time.Millisecond))
		} else {
			s.log.Warn("control stream ended", "err", err, "up_for", time.Since(up).Round(time.Millisecond), "retry_in", wait.Round(time.Millisecond))
		}
		s.setState(false, err)
		if err := sleepOrWake(ctx, wait, s.cfg.Wake); err != nil {
			return err
		}
	}
}

// sleepOrWake waits d, or until a receive from wake (a nil wake never
// receives), or until ctx ends, returning ctx.Err() in that case.
func sleepOrWake(ctx context.Context, d time.Duration, wake <-chan struct{}) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	case <-wake:
	}
	return nil
}

func (s *Session) setState(connected bool, err error) {
	if s.cfg.OnState != nil {
		s.cfg.OnState(connected, err)
	}
}

// applyLogEvery is how often one repeated Apply error is logged.
const applyLogEvery = 30 * time.Second

// rateLimiter lets through the first of a run of equal messages and then
// at most one every 'every'. It is used only from Run's goroutine.
type rateLimiter struct {
	every      time.Duration
	last       time.Time
	lastMsg    string
	suppressed int
}

// allow reports whether msg may be logged now and how many messages were
// suppressed since the last one let through.
func (r *rateLimiter) allow(now time.Time, msg string) (bool, int) {
	if msg == r.lastMsg && now.Sub(r.last) < r.every {
		r.suppressed++
		return false, 0
	}
	n := r.suppressed
	r.last, r.lastMsg, r.suppressed = now, msg, 0
	return true, n
}
