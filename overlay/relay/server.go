package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/warrennet/warren/overlay/wire"
)

// RegistrationTimeout is how long a registration lives without a HELLO.
// Nodes send one every BindConfig.KeepaliveInterval (15 s by default).
const RegistrationTimeout = 60 * time.Second

const (
	allowedTTL    = time.Second // how long an Allowed answer is reused
	sweepInterval = time.Second // how often the read loop forgets what expired
	// forgetAfter is how long an expired registration is kept, so that the
	// node's datagrams are refused with the reason (its credential
	// expired) rather than "not registered".
	forgetAfter   = RegistrationTimeout
	replyInterval = time.Second // at most one refusal per address per interval
	maxReplied    = 4096        // addresses remembered for refusal limiting
	// HELLO budgets (docs/PROTOCOL.md, "Registration"). A HELLO's MAC is
	// checked before any of them is charged, so a forged HELLO costs only
	// its verification; a replayed one is refused as stale before them
	// too. Only a verified HELLO with a new timestamp charges a budget.
	nodeHelloRate  = 5 // verified new HELLOs per second, per key
	nodeHelloBurst = 10
	// The HELLOs that register a key or move it to a new address are
	// also metered per source (an IPv4 address, an IPv6 /64) and for the
	// whole server. A node's HELLO from the address it is registered at
	// charges neither: nobody else can spend what keeps it registered.
	sourceHelloRate  = 100
	sourceHelloBurst = 200
	maxSources       = 1 << 16 // source budgets remembered
	helloRate        = 10000
	helloBurst       = 1000
	// dupAckEvery: a duplicate HELLO (the registered one again, from the
	// registered address) is acknowledged again at most this often.
	dupAckEvery  = time.Second
	readBatch    = 64 // datagrams per recvmmsg
	maxReadFails = 10 // consecutive read errors before pausing
	logEvery     = 10 * time.Second
	statsEvery   = time.Minute // counters are logged this often while traffic flows
	// backlogWait is the longest the read loop waits for the write loop
	// once a queue is half full.
	backlogWait = 2 * time.Millisecond
	// inlineBatch is the most datagrams (or runs) one read may bring for
	// the read loop to send them itself.
	inlineBatch = 4
)

// ServerConfig configures a Server.
type ServerConfig struct {
	// Key verifies credentials: the key the coordinator issues them with
	// (see NewKey). At least KeyLen bytes.
	Key []byte
	// Allowed is the policy: whether src may send to dst. The coordinator
	// answers from its current snapshot: both enrolled, one a client and
	// the other a connector. The server asks once per (src, dst) pair and
	// reuses the answer for a second, so a revocation bites within a
	// second. It is called from the server's read loop: it must be fast,
	// safe for concurrent use, and must not call back into the Server.
	Allowed func(src, dst wire.Key) bool
	// Logger receives registration events and rate-limited per-packet
	// errors. Nil discards.
	Logger *slog.Logger
	// Now is the clock for registrations, credentials and rate limits.
	// Nil means time.Now.
	Now func() time.Time
	// NodeRate caps the bytes per second one node may send through the
	// relay, with a burst of a tenth of a second (at least 64 KiB). Excess
	// datagrams are dropped and counted as RateLimited. Zero means no cap
	// beyond the node's queue.
	NodeRate int64
}

// Validate checks the configuration.
func (c ServerConfig) Validate() error {
	if err := checkKey(c.Key); err != nil {
		return err
	}
	if c.Allowed == nil {
		return errors.New("relay server: no Allowed policy")
	}
	if c.NodeRate < 0 {
		return fmt.Errorf("relay server: node rate %d is negative", c.NodeRate)
	}
	return nil
}

// ErrServerClosed is returned by Serve once Close has been called.
var ErrServerClosed = errors.New("relay server closed")

// Server is the relay: it forwards DATA frames between registered nodes
// the policy lets talk, without ever reading the datagrams inside.
//
// Serve runs two goroutines besides its own: a read loop, which parses
// and verifies every frame, owns the registrations and decides what to
// forward, and a write loop, which sends what the read loop queued. The
// read loop never blocks on the write loop: once a queue is half full it
// pauses for at most backlogWait to let the write loop catch up, and what
// does not fit a queue is dropped and counted. Serve stops both before it
// returns.
type Server struct {
	key      []byte
	allowed  func(src, dst wire.Key) bool
	log      *slog.Logger
	logs     *logLimiter
	now      func() time.Time
	nodeRate float64
	burst    float64
	sched    *sched
	stats    counters
	// gso: the write loop may send runs (UDP_SEGMENT); cleared for good
	// when the kernel refuses one. Set by Serve before its loops start.
	gso atomic.Bool

	mu      sync.Mutex // guards the lifecycle fields below
	closed  bool
	serving bool
	cancel  context.CancelFunc
	done    chan struct{} // closed when Serve returns
}

// NewServer returns a server; Serve runs it.
func NewServer(cfg ServerConfig) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Server{
		key:      append([]byte(nil), cfg.Key...),
		allowed:  cfg.Allowed,
		log:      cfg.Logger,
		logs:     newLogLimiter(cfg.Logger, logEvery),
		now:      cfg.Now,
		nodeRate: float64(cfg.NodeRate),
		burst:    max(float64(cfg.NodeRate)/10, 64<<10),
		sched:    newSched(),
	}, nil
}

// Serve relays on pc until ctx ends or Close is called, then closes pc,
// stops its goroutines and returns nil. It takes ownership of pc. It
// returns an error if pc fails (is closed by someone else), and
// ErrServerClosed if called after Close. A Server serves once.
func (s *Server) Serve(ctx context.Context, pc net.PacketConn) error {
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		pc.Close()
		return ErrServerClosed
	case s.serving:
		s.mu.Unlock()
		pc.Close()
		return errors.New("relay server is already serving")
	}
	s.serving = true
	ctx, cancel := context.WithCancel(ctx)
	s.cancel, s.done = cancel, make(chan struct{})
	s.mu.Unlock()
	defer close(s.done)
	defer cancel()

	var gro bool
	if uc, ok := pc.(*net.UDPConn); ok {
		growBuffers(uc, relaySocketBuffer)
		var gso bool
		gso, gro = enableOffload(uc)
		s.gso.Store(gso)
	}
	s.log.Info("relay serving", "listen", pc.LocalAddr().String(), "gso", s.gso.Load(), "gro", gro)
	bc := newBatchConn(pc)
	var wg sync.WaitGroup
	wg.Go(func() { s.writeLoop(ctx, bc) })
	// Closing the socket is what unblocks the read loop.
	wg.Go(func() {
		<-ctx.Done()
		pc.Close()
	})
	err := s.readLoop(ctx, bc, gro)
	cancel()
	wg.Wait()
	s.logStats("relay stopped")
	return err
}

// logStats logs the counters under msg, leaving out drop reasons that
// are zero.
func (s *Server) logStats(msg string) {
	st := s.Stats()
	args := []any{"registrations", st.Registrations, "forwarded", st.Forwarded, "forwarded_bytes", st.ForwardedBytes,
		"runs", st.Runs, "run_frames", st.RunFrames, "hellos", st.Hellos, "replies", st.Replies, "candidates_removed", st.CandidatesRemoved}
	d := st.Dropped
	for _, c := range []struct {
		name string
		n    uint64
	}{
		{"malformed", d.Malformed}, {"bad_credential", d.BadCredential}, {"expired", d.Expired}, {"stale", d.Stale},
		{"hello_limited", d.HelloLimited}, {"not_registered", d.NotRegistered}, {"unknown_peer", d.UnknownPeer},
		{"not_allowed", d.NotAllowed}, {"rate_limited", d.RateLimited}, {"queue_full", d.QueueFull},
		{"reply_limited", d.ReplyLimited}, {"write_error", d.WriteError}, {"read_errors", st.ReadErrors},
	} {
		if c.n > 0 {
			args = append(args, "dropped_"+c.name, c.n)
		}
	}
	s.log.Info(msg, args...)
}

// Close stops Serve and waits for it to return. It is idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	cancel, done := s.cancel, s.done
	s.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	return nil
}

// Stats are the server's counters since it was made.
type Stats struct {
	// Registrations is the number of registered nodes, as of the last
	// sweep (at most a second old).
	Registrations int
	// Hellos counts HELLOs accepted.
	Hellos uint64
	// Forwarded counts DATA frames sent on, and ForwardedBytes their
	// datagrams' bytes.
	Forwarded      uint64
	ForwardedBytes uint64
	// Runs counts sends that carried several DATA frames at once (UDP
	// segmentation offload), and RunFrames the frames in them.
	Runs      uint64
	RunFrames uint64
	// Replies counts HELLO-ACKs and refusals sent.
	Replies uint64
	// ReadErrors counts socket reads that failed.
	ReadErrors uint64
	// CandidatesRemoved counts candidates the relay took out of CALLs it
	// forwarded: addresses it has not seen the caller at.
	CandidatesRemoved uint64
	// Dropped counts what was not forwarded or answered, by reason.
	Dropped Drops
}

// Drops counts frames dropped, by reason. Each dropped frame counts once.
type Drops struct {
	Malformed     uint64 // not a frame, or not one a node sends
	BadCredential uint64 // HELLO whose claims or MAC did not verify
	Expired       uint64 // HELLO with an expired credential, or DATA from its node
	Stale         uint64 // HELLO not newer than the registered one
	HelloLimited  uint64 // verified HELLO over a budget (its key's, its source's, the relay's), or a duplicate within dupAckEvery
	NotRegistered uint64 // DATA from an address with no registration
	UnknownPeer   uint64 // DATA to a key with no registration
	NotAllowed    uint64 // DATA the policy refuses
	RateLimited   uint64 // DATA over its node's NodeRate
	QueueFull     uint64 // DATA that found its node's queue full
	ReplyLimited  uint64 // refusals and ACKs not sent: limited or queue full
	WriteError    uint64 // frames the socket refused to send
}

type counters struct {
	registrations                                          atomic.Int64
	hellos, forwarded, forwardedBytes, replies, readErrors atomic.Uint64
	runs, runFrames                                        atomic.Uint64
	malformed, badCredential, expired, stale, helloLimited atomic.Uint64
	notRegistered, unknownPeer, notAllowed, rateLimited    atomic.Uint64
	queueFull, replyLimited, writeError                    atomic.Uint64
	candidatesRemoved                                      atomic.Uint64
}

// Stats returns the counters. It is safe to call at any time.
func (s *Server) Stats() Stats {
	c := &s.stats
	return Stats{
		Registrations:     int(c.registrations.Load()),
		Hellos:            c.hellos.Load(),
		Forwarded:         c.forwarded.Load(),
		ForwardedBytes:    c.forwardedBytes.Load(),
		Runs:              c.runs.Load(),
		RunFrames:         c.runFrames.Load(),
		Replies:           c.replies.Load(),
		ReadErrors:        c.readErrors.Load(),
		CandidatesRemoved: c.candidatesRemoved.Load(),
		Dropped: Drops{
			Malformed:     c.malformed.Load(),
			BadCredential: c.badCredential.Load(),
			Expired:       c.expired.Load(),
			Stale:         c.stale.Load(),
			HelloLimited:  c.helloLimited.Load(),
			NotRegistered: c.notRegistered.Load(),
			UnknownPeer:   c.unknownPeer.Load(),
			NotAllowed:    c.notAllowed.Load(),
			RateLimited:   c.rateLimited.Load(),
			QueueFull:     c.queueFull.Load(),
			ReplyLimited:  c.replyLimited.Load(),
			WriteError:    c.writeError.Load(),
		},
	}
}

// registration is one node's presence at the relay. All fields but q are
// owned by the read loop; q is guarded by the sched's mutex.
type registration struct {
	key    wire.Key
	nodeID string
	// addr is where the node's last HELLO came from; the zero AddrPort
	// once another node's HELLO came from the same address.
	addr netip.AddrPort
	// udp is addr for the write loop: replaced, never modified, so a
	// datagram queued before a rebinding keeps the address it had.
	udp         *net.UDPAddr
	helloTS     uint64
	credExpires time.Time
	// expires is the earlier of the last HELLO plus RegistrationTimeout
	// and the credential's expiry.
	expires time.Time
	logged  bool // its expiry was logged
	bucket  tokenBucket
	// hellos meters the key's verified new HELLOs (nodeHelloRate);
	// dupAcked is when a duplicate HELLO was last acknowledged.
	hellos   tokenBucket
	dupAcked time.Time
	q        queue
}

func (r *registration) live(now time.Time) bool { return now.Before(r.expires) }

type pair struct{ src, dst wire.Key }

type verdict struct {
	ok bool
	at time.Time
}

// readState is everything the read loop owns. Nothing else touches it,
// so it needs no lock.
type readState struct {
	byKey    map[wire.Key]*registration
	byAddr   map[netip.AddrPort]*registration
	verdicts map[pair]verdict
	replied  map[netip.AddrPort]time.Time
	hellos   tokenBucket // HELLOs that register or move a key, all sources
	// sources meters the HELLOs that register or move a key, per source
	// (sourcePrefix); at most maxSources.
	sources   map[netip.Prefix]*tokenBucket
	lastSweep time.Time
	lastStats time.Time // when the counters were last logged
	statsAt   uint64    // Forwarded then
	queued    bool      // something was queued since the write loop was woken
	run       run       // DATA gathered for the next send
	cur       int       // the message being handled, or -1
	curBuf    []byte    // its buffer
	curOff    int       // where the frame being handled starts in it
	taken     []bool    // messages whose buffer a run took: replace before reading
	last      lastData  // the last DATA frame that passed every check
}

// lastData lets the frames of a GRO run, which come from one address and
// mostly go to one key, skip the lookups and checks the first of them
// passed. It holds only within one read (now): registrations change with
// HELLOs and sweeps, which clear it, and with time.
type lastData struct {
	from     netip.AddrPort
	key      wire.Key
	now      time.Time
	src, dst *registration
}

// run is DATA the read loop gathers into one send: consecutive frames
// from one source to one destination address, all seg bytes long but
// the last, which may be shorter and ends the run. Frames are rewritten
// (the source's key in place of the destination's) as they are added.
//
// The frames stay where they were read, in message msg's buffer from
// offset off, as long as they follow each other there: with GRO a
// received message is a run of frames from one source, mostly to one
// destination. When the run is sent, a run that starts the message's
// buffer (and has more than one frame) takes the buffer with it, once the
// read loop is done with the message, and the loop gives the message a
// new one; any other run is copied out. Copying every frame had been 11 %
// of the relay's CPU.
type run struct {
	src   *registration
	to    *net.UDPAddr
	from  netip.AddrPort // src's address, for a refusal
	dst   wire.Key       // the destination's key, for a refusal
	buf   []byte         // the frames, in the message's buffer
	msg   int            // the message whose buffer holds buf
	off   int            // where buf starts in it
	seg   int
	n     int
	ended bool
}

func newReadState() *readState {
	return &readState{
		byKey:    map[wire.Key]*registration{},
		byAddr:   map[netip.AddrPort]*registration{},
		verdicts: map[pair]verdict{},
		replied:  map[netip.AddrPort]time.Time{},
		sources:  map[netip.Prefix]*tokenBucket{},
		cur:      -1,
	}
}

func (s *Server) readLoop(ctx context.Context, bc batchConn, gro bool) error {
	rs := newReadState()
	// With GRO one message can hold maxSegments datagrams: read no more
	// than half a queue's worth at once, so that one read cannot
	// overflow a source's queue before the backlog pause below.
	n := readBatch
	if gro {
		n = queueLen / 2 / maxSegments
	}
	ms := make([]ipv4.Message, n)
	for i := range ms {
		ms[i].Buffers = [][]byte{getBuf(MaxFrameLen)} // pooled: a run may take it
		ms[i].OOB = make([]byte, 0, offloadSpace)
	}
	rs.taken = make([]bool, n)
	var deadline time.Time
	fails := 0
	backoff := time.NewTimer(backlogWait)
	backoff.Stop()
	inline := newWriter(s, bc)
	for {
		// A read deadline wakes an idle loop to sweep.
		if wall := time.Now(); deadline.Sub(wall) < sweepInterval/2 {
			deadline = wall.Add(sweepInterval)
			if err := bc.SetReadDeadline(deadline); err != nil && ctx.Err() == nil {
				return fmt.Errorf("relay socket: setting read deadline: %w", err)
			}
		}
		for i := range ms {
			ms[i].OOB = ms[i].OOB[:cap(ms[i].OOB)]
			if rs.taken[i] {
				ms[i].Buffers[0], rs.taken[i] = getBuf(MaxFrameLen), false
			}
		}
		n, err := bc.ReadBatch(ms, 0)
		if ctx.Err() != nil {
			return nil
		}
		now := s.now()
		if now.Sub(rs.lastSweep) >= sweepInterval || now.Before(rs.lastSweep) {
			s.sweep(rs, now)
		}
		if err != nil {
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded):
				continue
			case errors.Is(err, net.ErrClosed):
				return fmt.Errorf("relay socket closed while serving: %w", err)
			}
			s.stats.readErrors.Add(1)
			s.logs.logf(slog.LevelWarn, "relay read failed", "err", err)
			if fails++; fails >= maxReadFails {
				fails = 0
				t := time.NewTimer(100 * time.Millisecond)
				select {
				case <-ctx.Done():
				case <-t.C:
				}
				t.Stop()
			}
			continue
		}
		fails = 0
		for i := range n {
			from, seg := addrPortOf(ms[i].Addr), 0
			if gro {
				seg = segmentSize(ms[i].OOB[:ms[i].NN])
			}
			rs.cur, rs.curBuf, rs.curOff = i, ms[i].Buffers[0], 0
			for pkt := range segments(ms[i].Buffers[0][:ms[i].N], seg) {
				s.handle(rs, now, pkt, from)
				rs.curOff += len(pkt)
			}
		}
		rs.cur, rs.curBuf = -1, nil
		s.flushRun(rs, now)
		if rs.queued && n <= inlineBatch {
			// A few datagrams, as interactive traffic brings: send
			// them from here rather than wake the write loop, which
			// would cost a goroutine switch of latency each way.
			rs.queued = false
			inline.sendOnce()
		}
		if rs.queued {
			rs.queued = false
			select {
			case <-s.sched.drained: // stale: from before this batch
			default:
			}
			s.sched.signal()
			if s.sched.backlogged() {
				// Give the write loop a moment before reading more,
				// rather than drop what the next read brings.
				backoff.Reset(backlogWait)
				select {
				case <-ctx.Done():
				case <-s.sched.drained:
				case <-backoff.C:
				}
				backoff.Stop()
			}
		}
	}
}

// sweep forgets registrations expired for longer than forgetAfter, old
// verdicts and old refusal times, and counts the live registrations.
func (s *Server) sweep(rs *readState, now time.Time) {
	rs.last = lastData{}
	rs.lastSweep = now
	if f := s.stats.forwarded.Load(); now.Sub(rs.lastStats) >= statsEvery && f != rs.statsAt {
		rs.lastStats, rs.statsAt = now, f
		s.logStats("relay stats")
	}
	live := 0
	for k, r := range rs.byKey {
		switch {
		case r.live(now):
			live++
			continue
		case !r.logged:
			r.logged = true
			s.log.Info("relay registration expired", "node", r.nodeID, "key", r.key.String())
		}
		if now.Before(r.expires.Add(forgetAfter)) {
			continue
		}
		delete(rs.byKey, k)
		if r.addr.IsValid() && rs.byAddr[r.addr] == r {
			delete(rs.byAddr, r.addr)
		}
	}
	s.stats.registrations.Store(int64(live))
	for p, v := range rs.verdicts {
		if !fresh(now, v.at, allowedTTL) {
			delete(rs.verdicts, p)
		}
	}
	for p, b := range rs.sources {
		if !fresh(now, b.last, sourceHelloBurst*time.Second/sourceHelloRate) {
			delete(rs.sources, p) // full again: forgetting it changes nothing
		}
	}
	for a, at := range rs.replied {
		if !fresh(now, at, replyInterval) {
			delete(rs.replied, a)
		}
	}
}

// fresh reports whether at is less than ttl before now (and not after it:
// a clock that stepped back makes everything stale).
func fresh(now, at time.Time, ttl time.Duration) bool {
	return !now.Before(at) && now.Sub(at) < ttl
}

func (s *Server) handle(rs *readState, now time.Time, pkt []byte, from netip.AddrPort) {
	if key, ok := dataKey(pkt); ok && from.IsValid() {
		s.handleData(rs, now, pkt, key, from)
		return
	}
	f, err := Parse(pkt)
	if err == nil && f.Type != TypeHello && f.Type != TypeData {
		err = fmt.Errorf("%w: %v frame from a node", ErrMalformed, f.Type)
	}
	if err != nil || !from.IsValid() {
		s.stats.malformed.Add(1)
		s.logs.logf(slog.LevelDebug, "relay dropped a malformed frame", "from", from.String(), "err", err)
		return
	}
	if f.Type == TypeHello {
		s.handleHello(rs, now, pkt, f, from)
		return
	}
	s.handleData(rs, now, pkt, f.Key, from)
}
