package coord

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warrennet/warren/overlay/coord/sshca"
	"github.com/warrennet/warren/overlay/coord/store"
	"github.com/warrennet/warren/overlay/wire"
	"github.com/warrennet/warren/split"
)

// Config configures a Coordinator.
type Config struct {
	Store  store.Store
	Logger *slog.Logger
	// URL is the coordinator's public base URL and Pin its certificate pin
	// (empty for a CA-issued certificate); both go into every token.
	URL string
	Pin string
	// Relay describes the relay every node is told about. Its credential
	// is filled per node by RelayCredential, when set.
	RelayEndpoint   string
	RelayCredential func(wire.Node) string
	// HeartbeatInterval and HeartbeatTimeout time the control streams;
	// zero means the wire defaults.
	HeartbeatInterval time.Duration
	HeartbeatTimeout  time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Rand is the source of IDs and secrets; nil means crypto/rand.
	// Tests pass a deterministic reader.
	Rand io.Reader
	// FlowRetention is how long flow records are kept; zero means
	// DefaultFlowRetention.
	FlowRetention time.Duration
	// MaxStreamsPerNode is how many control streams one node may keep
	// open; a new one past it replaces the oldest. Zero means
	// DefaultMaxStreamsPerNode.
	MaxStreamsPerNode int
	// IdentityProvider enables single sign-on: laptops enroll by a person
	// logging in there. Nil turns it off (login endpoints answer
	// CodeSSODisabled).
	IdentityProvider IdentityProvider
	// RevalidateInterval is how often Run asks the provider about the
	// people with nodes (RevalidateUsers); zero means
	// DefaultRevalidateInterval.
	RevalidateInterval time.Duration
	// MaxPendingLogins bounds the logins in progress; zero means
	// DefaultMaxPendingLogins.
	MaxPendingLogins int
	// SSHCA signs users' SSH certificates; nil turns them off (the SSH
	// endpoints answer CodeUnavailable).
	SSHCA *sshca.CA
	// SSHCertMaxValidity caps an SSH certificate's validity; zero means
	// DefaultSSHCertMaxValidity.
	SSHCertMaxValidity time.Duration
	// HostSuffix is the domain under which clients resolve the named
	// hosts (NAME.SUFFIX); empty means wire.DefaultHostSuffix. It must
	// be a domain name (wire.CanonicalDomain).
	HostSuffix string
}

// Coordinator is the control plane's state and logic. Create it with New,
// start its background work with Run, and call Close when done.
type Coordinator struct {
	store  store.Store
	log    *slog.Logger
	url    string
	pin    string
	relay  string
	relayC func(wire.Node) string
	// hostSuffix is the canonical host suffix every client is told.
	hostSuffix string
	hbInt      time.Duration
	hbTO       time.Duration
	now        func() time.Time
	// maxStreams is how many control streams a node may keep open.
	maxStreams int
	rand       io.Reader

	snap atomic.Pointer[snapshot]

	// writeMu serialises writes: the store call and the publication of
	// the snapshot built from its result happen under it.
	writeMu sync.Mutex

	// flowRetention and pruneEvery time the pruning of the flow log;
	// denials carries connectors' denials to client streams.
	flowRetention time.Duration
	pruneEvery    time.Duration
	denials       denialHub

	// presenceMu guards presence. Held only for map edits, never while
	// calling out.
	presenceMu sync.Mutex
	presence   map[string]*presence // by node ID
	dirtySeen  map[string]time.Time // last-seen times not yet stored

	// netmapBuilds counts the netmaps built for streams, for tests.
	netmapBuilds atomic.Int64

	// idp is the identity provider; nil without single sign-on. logins
	// are the logins in progress; loginWait bounds a WaitLogin call.
	idp        IdentityProvider
	logins     *loginTable
	loginWait  time.Duration
	revalidate time.Duration
	// sshca signs SSH certificates valid for at most sshMaxValidity; nil
	// without a CA.
	sshca          *sshca.CA
	sshMaxValidity time.Duration
}

// presence is what the coordinator knows of a node's streams.
type presence struct {
	streams []*openStream // oldest first
	// netmaps is shared by the node's streams; nil while it has none.
	netmaps  *netmapCache
	lastSeen time.Time
	sent     uint64 // version of the last netmap sent
	applied  uint64 // version the node last acknowledged
}

// New loads the state from cfg.Store and returns a Coordinator serving it.
func New(ctx context.Context, cfg Config) (*Coordinator, error) {
	if cfg.Store == nil {
		return nil, errors.New("coordinator: no store")
	}
	if err := wire.ValidateCoordinatorURL(cfg.URL); err != nil {
		return nil, err
	}
	if cfg.FlowRetention < 0 {
		return nil, fmt.Errorf("coordinator: flow retention %v is negative", cfg.FlowRetention)
	}
	suffix := wire.DefaultHostSuffix
	if cfg.HostSuffix != "" {
		var err error
		if suffix, err = wire.CanonicalDomain(cfg.HostSuffix); err != nil {
			return nil, fmt.Errorf("coordinator: host suffix: %w", err)
		}
	}
	c := &Coordinator{
		hostSuffix: suffix,
		store:      cfg.Store,
		log:        cfg.Logger,
		url:        cfg.URL,
		pin:        cfg.Pin,
		relay:      cfg.RelayEndpoint,
		relayC:     cfg.RelayCredential,
		hbInt:      cfg.HeartbeatInterval,
		hbTO:       cfg.HeartbeatTimeout,
		maxStreams: cfg.MaxStreamsPerNode,
		now:        cfg.Now,
		rand:       cfg.Rand,
		presence:   make(map[string]*presence),
		dirtySeen:  make(map[string]time.Time),

		flowRetention: cfg.FlowRetention,
		pruneEvery:    flowPruneInterval,

		idp:            cfg.IdentityProvider,
		logins:         newLoginTable(cfg.MaxPendingLogins),
		loginWait:      wire.LoginWaitMax,
		revalidate:     cfg.RevalidateInterval,
		sshca:          cfg.SSHCA,
		sshMaxValidity: cfg.SSHCertMaxValidity,
	}
	if c.revalidate < 0 {
		return nil, fmt.Errorf("coordinator: revalidation interval %v is negative", cfg.RevalidateInterval)
	}
	if c.revalidate == 0 {
		c.revalidate = DefaultRevalidateInterval
	}
	if c.sshMaxValidity < 0 {
		return nil, fmt.Errorf("coordinator: SSH certificate maximum validity %v is negative", cfg.SSHCertMaxValidity)
	}
	if c.sshMaxValidity == 0 {
		c.sshMaxValidity = DefaultSSHCertMaxValidity
	}
	if c.flowRetention == 0 {
		c.flowRetention = DefaultFlowRetention
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.rand == nil {
		c.rand = rand.Reader
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.hbInt <= 0 {
		c.hbInt = wire.HeartbeatInterval
	}
	if c.hbTO <= 0 {
		c.hbTO = wire.HeartbeatTimeout
	}
	if c.maxStreams <= 0 {
		c.maxStreams = DefaultMaxStreamsPerNode
	}
	st, err := cfg.Store.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("loading state: %w", err)
	}
	sp := DefaultSplitPolicy()
	if st.Split != nil {
		sp = *st.Split
	}
	s, err := newSnapshot(st.Version, st.Tokens, st.Nodes, st.Routes, sp, map[string]bool{})
	if err != nil {
		return nil, fmt.Errorf("indexing state: %w", err)
	}
	s.hosts = st.Hosts
	s.dns = st.DNS
	s.users = st.Users
	s.sso = c.idp != nil
	c.loadPolicy(s, st.Policy)
	c.snap.Store(s)
	return c, nil
}

// DefaultSplitPolicy is the policy of a coordinator whose admin never set one.
func DefaultSplitPolicy() wire.SplitPolicy {
	d := split.DefaultPolicy()
	p := wire.SplitPolicy{Mode: wire.SplitMode(d.Mode), Include: []wire.SplitEntry{}, Exclude: []wire.SplitEntry{}}
	for _, e := range d.Include {
		p.Include = append(p.Include, wire.SplitEntry{Prefix: e.Prefix, Comment: e.Comment, Builtin: e.Builtin})
	}
	for _, e := range d.Exclude {
		p.Exclude = append(p.Exclude, wire.SplitEntry{Prefix: e.Prefix, Comment: e.Comment, Builtin: e.Builtin})
	}
	return p
}

// Run stores nodes' last-seen times (and forgets expired logins) every
// interval until ctx ends, then once more. It also prunes the flow log, at
// once and then hourly, and with single sign-on revalidates the people
// with nodes every revalidation interval (RevalidateUsers). It returns nil
// when ctx is cancelled.
func (c *Coordinator) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	c.pruneFlows(ctx)
	prune := time.NewTicker(c.pruneEvery)
	defer prune.Stop()
	var revalidate <-chan time.Time // nil, never ready, without single sign-on
	if c.idp != nil {
		rt := time.NewTicker(c.revalidate)
		defer rt.Stop()
		revalidate = rt.C
	}
	for {
		select {
		case <-ctx.Done():
			c.flushSeen(context.WithoutCancel(ctx))
			return nil
		case <-t.C:
			c.flushSeen(ctx)
			c.pruneLogins()
		case <-prune.C:
			c.pruneFlows(ctx)
		case <-revalidate:
			if err := c.RevalidateUsers(ctx); err != nil && ctx.Err() == nil {
				c.log.Error("revalidating users", "err", err)
			}
		}
	}
}

func (c *Coordinator) flushSeen(ctx context.Context) {
	c.presenceMu.Lock()
	seen := c.dirtySeen
	c.dirtySeen = make(map[string]time.Time)
	c.presenceMu.Unlock()
	if len(seen) == 0 {
		return
	}
	if err := c.store.TouchNodes(ctx, seen); err != nil {
		c.log.Warn("storing last-seen times", "nodes", len(seen), "err", err)
	}
}

// publish makes s the current snapshot and wakes everyone waiting on the
// previous one, compiling the access policy again first if its inputs
// changed. Call with writeMu held.
func (c *Coordinator) publish(s *snapshot) {
	if s.policyDirty {
		c.recompilePolicy(s)
		s.policyDirty = false
	}
	old := c.snap.Swap(s)
	close(old.changed)
}

// Version is the current state version.
func (c *Coordinator) Version() uint64 { return c.snap.Load().version }

// newSecret returns 32 random bytes in URL-safe base64.
func (c *Coordinator) newSecret() (string, error) {
	var b [32]byte
	if _, err := io.ReadFull(c.rand, b[:]); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// newID returns n random bytes in hex.
func (c *Coordinator) newID(n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(c.rand, b); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// hashSecret is how secrets are stored: lowercase hex SHA-256.
func hashSecret(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}
