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
	helloRate     = 10000       // HELLOs verified per second, whole server
	helloBurst    = 1000
	readBatch     = 64 // datagrams per recvmmsg
	maxReadFails  = 10 // consecutive read errors before pausing
	logEvery      = 10 * time.Second
	statsEvery    = time.Minute // counters are logged this often while traffic flows
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
		"runs", st.Runs, "run_frames", st.RunFrames, "hellos", st.Hellos, "replies", st.Replies}
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
	// Dropped counts what was not forwarded or answered, by reason.
	Dropped Drops
}

// Drops counts frames dropped, by reason. Each dropped frame counts once.
type Drops struct {
	Malformed     uint64 // not a frame, or not one a node sends
	BadCredential uint64 // HELLO whose claims or MAC did not verify
	Expired       uint64 // HELLO with an expired credential, or DATA from its node
	Stale         uint64 // HELLO not newer than the registered one
	HelloLimited  uint64 // HELLO over the server's verification budget
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
}

// Stats returns the counters. It is safe to call at any time.
func (s *Server) Stats() Stats {
	c := &s.stats
	return Stats{
		Registrations:  int(c.registrations.Load()),
		Hellos:         c.hellos.Load(),
		Forwarded:      c.forwarded.Load(),
		ForwardedBytes: c.forwardedBytes.Load(),
		Runs:           c.runs.Load(),
		RunFrames:      c.runFrames.Load(),
		Replies:        c.replies.Load(),
		ReadErrors:     c.readErrors.Load(),
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
	q       queue
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
	byKey     map[wire.Key]*registration
	byAddr    map[netip.AddrPort]*registration
	verdicts  map[pair]verdict
	replied   map[netip.AddrPort]time.Time
	hellos    tokenBucket
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

func (s *Server) readLoop(ctx context.Context, bc batchConn, gro bool) error {
	rs := &readState{
		byKey:    map[wire.Key]*registration{},
		byAddr:   map[netip.AddrPort]*registration{},
		verdicts: map[pair]verdict{},
		replied:  map[netip.AddrPort]time.Time{},
		cur:      -1,
	}
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

func (s *Server) handleHello(rs *readState, now time.Time, pkt []byte, f Frame, from netip.AddrPort) {
	rs.last = lastData{}
	if !rs.hellos.take(now, helloRate, helloBurst, 1) {
		s.stats.helloLimited.Add(1)
		s.logs.logf(slog.LevelWarn, "relay is over its HELLO budget; dropping HELLOs", "from", from.String())
		return
	}
	c, tag, err := openHello(s.key, pkt, f, now)
	switch {
	case errors.Is(err, ErrExpired):
		s.stats.expired.Add(1)
		s.logs.logf(slog.LevelInfo, "relay refused a HELLO with an expired credential", "node", c.NodeID, "from", from.String())
		s.refuse(rs, now, from, CodeExpired, wire.Key{})
		return
	case err != nil:
		s.stats.badCredential.Add(1)
		s.logs.logf(slog.LevelWarn, "relay refused a HELLO", "from", from.String(), "err", err)
		s.refuse(rs, now, from, CodeBadCredential, wire.Key{})
		return
	}
	r := rs.byKey[c.PublicKey]
	if r != nil && r.live(now) && f.Timestamp <= r.helloTS && !(f.Timestamp == r.helloTS && from == r.addr) {
		// Older, or the same HELLO from somewhere else: a replay. (The
		// same HELLO from the same address is a duplicate; ACK it again.)
		s.stats.stale.Add(1)
		s.logs.logf(slog.LevelWarn, "relay refused a stale HELLO", "node", c.NodeID, "from", from.String())
		s.refuse(rs, now, from, CodeStale, wire.Key{})
		return
	}
	if r == nil || !r.live(now) {
		if r == nil {
			r = &registration{key: c.PublicKey}
			rs.byKey[c.PublicKey] = r
		}
		r.logged = false
		s.stats.registrations.Add(1)
	}
	if r.addr != from {
		if r.addr.IsValid() && rs.byAddr[r.addr] == r {
			delete(rs.byAddr, r.addr)
		}
		if other := rs.byAddr[from]; other != nil {
			// A NAT gave this address to another node: the old
			// holder is unreachable until its next HELLO.
			other.addr, other.udp = netip.AddrPort{}, nil
		}
		rs.byAddr[from] = r
		if r.addr.IsValid() {
			s.log.Info("relay node moved", "node", c.NodeID, "key", c.PublicKey.String(), "addr", from.String(), "was", r.addr.String())
		} else {
			s.log.Info("relay registered node", "node", c.NodeID, "role", c.Role, "key", c.PublicKey.String(), "addr", from.String())
		}
		r.addr, r.udp = from, net.UDPAddrFromAddrPort(from)
	}
	r.nodeID = c.NodeID
	r.helloTS = f.Timestamp
	r.credExpires = c.Expires
	r.expires = now.Add(RegistrationTimeout)
	if c.Expires.Before(r.expires) {
		r.expires = c.Expires
	}
	s.stats.hellos.Add(1)
	s.queueCtl(rs, outPkt{buf: appendAck(make([]byte, 0, ackLen), &tag, f.Timestamp, from), addr: r.udp})
}

func (s *Server) handleData(rs *readState, now time.Time, pkt []byte, key wire.Key, from netip.AddrPort) {
	if c := &rs.last; c.src != nil && c.from == from && c.key == key && c.now.Equal(now) {
		// The same source and destination as the frame before, in the
		// same read: every check below passed then and still holds (a
		// HELLO or a sweep clears this), except the source's rate.
		if !s.overRate(rs, now, c.src, pkt, from, key) {
			s.addToRun(rs, now, c.src, c.dst, pkt, from)
		}
		return
	}
	rs.last = lastData{}
	src := rs.byAddr[from]
	switch {
	case src != nil && !src.live(now) && !now.Before(src.credExpires):
		s.stats.expired.Add(1)
		s.refuse(rs, now, from, CodeExpired, wire.Key{})
		return
	case src == nil || !src.live(now):
		s.stats.notRegistered.Add(1)
		s.logs.logf(slog.LevelDebug, "relay dropped data from an unregistered address", "from", from.String())
		s.refuse(rs, now, from, CodeNotRegistered, wire.Key{})
		return
	}
	dst := rs.byKey[key]
	if dst == nil || !dst.live(now) || dst.udp == nil {
		s.stats.unknownPeer.Add(1)
		s.logs.logf(slog.LevelDebug, "relay dropped data for an unregistered key", "node", src.nodeID, "dst", key.String())
		s.refuse(rs, now, from, CodeUnknownPeer, key)
		return
	}
	if dst == src || !s.allow(rs, now, src.key, dst.key) {
		s.stats.notAllowed.Add(1)
		s.logs.logf(slog.LevelDebug, "relay dropped data the policy refuses", "node", src.nodeID, "dst", dst.nodeID)
		s.refuse(rs, now, from, CodeNotAllowed, key)
		return
	}
	if s.overRate(rs, now, src, pkt, from, key) {
		return
	}
	rs.last = lastData{from: from, key: key, now: now, src: src, dst: dst}
	s.addToRun(rs, now, src, dst, pkt, from)
}

// overRate takes pkt from src's rate budget, or refuses it and reports
// true if the budget is spent.
func (s *Server) overRate(rs *readState, now time.Time, src *registration, pkt []byte, from netip.AddrPort, key wire.Key) bool {
	if s.nodeRate <= 0 || src.bucket.take(now, s.nodeRate, s.burst, float64(len(pkt))) {
		return false
	}
	s.stats.rateLimited.Add(1)
	s.logs.logf(slog.LevelDebug, "relay dropped data over the node's rate", "node", src.nodeID)
	s.refuse(rs, now, from, CodeRateLimited, key)
	return true
}

// addToRun adds a DATA frame that passed every check to the run being
// gathered, first sending that run on if the frame cannot join it. pkt is
// the frame being handled: at rs.curOff in message rs.cur's buffer.
func (s *Server) addToRun(rs *readState, now time.Time, src, dst *registration, pkt []byte, from netip.AddrPort) {
	r := &rs.run
	if r.n > 0 && (r.src != src || r.to != dst.udp || r.ended || len(pkt) > r.seg ||
		r.n == maxSegments || len(r.buf)+len(pkt) > maxRunLen || !s.gso.Load() ||
		r.msg != rs.cur || r.off+len(r.buf) != rs.curOff) {
		s.flushRun(rs, now)
	}
	if r.n == 0 {
		*r = run{src: src, to: dst.udp, from: from, dst: dst.key, msg: rs.cur, off: rs.curOff, seg: len(pkt)}
	}
	// The outgoing frame is the incoming one with the source's key in
	// place of the destination's.
	copy(pkt[HeaderLen:DataHeaderLen], src.key[:])
	r.buf = rs.curBuf[r.off : rs.curOff+len(pkt)]
	r.n++
	r.ended = len(pkt) < r.seg
}

// flushRun queues the run being gathered, if any, on its source's queue:
// with the buffer it sits in if it can take it (see run), else a copy.
func (s *Server) flushRun(rs *readState, now time.Time) {
	r := &rs.run
	if r.n == 0 {
		return
	}
	buf := r.buf
	if r.n > 1 && r.off == 0 && r.msg != rs.cur {
		rs.taken[r.msg] = true
	} else {
		buf = append(getBuf(len(r.buf))[:0], r.buf...)
	}
	p := outPkt{buf: buf, addr: r.to, data: true, n: r.n}
	if r.n > 1 {
		p.seg = r.seg
	}
	if s.sched.push(&r.src.q, p) {
		rs.queued = true
	} else {
		putBuf(buf)
		s.stats.queueFull.Add(uint64(r.n))
		s.logs.logf(slog.LevelDebug, "relay dropped data at the node's full queue", "node", r.src.nodeID)
		s.refuse(rs, now, r.from, CodeRateLimited, r.dst)
	}
	*r = run{}
}

// allow asks the policy, reusing an answer younger than allowedTTL.
func (s *Server) allow(rs *readState, now time.Time, src, dst wire.Key) bool {
	p := pair{src, dst}
	if v, ok := rs.verdicts[p]; ok && fresh(now, v.at, allowedTTL) {
		return v.ok
	}
	ok := s.allowed(src, dst)
	rs.verdicts[p] = verdict{ok: ok, at: now}
	return ok
}

// refuse queues an ERROR frame to addr, at most one per address per
// replyInterval. A refusal is never longer than the frame it answers, so
// the relay cannot be used to amplify traffic towards a spoofed address.
func (s *Server) refuse(rs *readState, now time.Time, to netip.AddrPort, code Code, key wire.Key) {
	at, seen := rs.replied[to]
	if (seen && fresh(now, at, replyInterval)) || (!seen && len(rs.replied) >= maxReplied) {
		s.stats.replyLimited.Add(1)
		return
	}
	rs.replied[to] = now
	s.queueCtl(rs, outPkt{buf: appendError(make([]byte, 0, errorLen), code, key), addr: net.UDPAddrFromAddrPort(to)})
}

func (s *Server) queueCtl(rs *readState, p outPkt) {
	if !s.sched.pushCtl(p) {
		s.stats.replyLimited.Add(1)
		return
	}
	rs.queued = true
}

func (s *Server) writeLoop(ctx context.Context, bc batchConn) {
	w := newWriter(s, bc)
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.sched.wake:
		}
		for ctx.Err() == nil && w.sendOnce() {
		}
	}
}

// writer is one goroutine's means of sending what the queues hold: the
// write loop's, or the read loop's when it sends a small batch itself.
type writer struct {
	s      *Server
	bc     batchConn
	ms     []ipv4.Message
	out    []outPkt
	failed []bool
}

func newWriter(s *Server, bc batchConn) *writer {
	w := &writer{s: s, bc: bc, ms: make([]ipv4.Message, writeBatch), out: make([]outPkt, 0, writeBatch), failed: make([]bool, writeBatch)}
	for i := range w.ms {
		w.ms[i].Buffers = make([][]byte, 1)
		w.ms[i].OOB = make([]byte, 0, offloadSpace)
	}
	return w
}

// sendOnce claims up to writeBatch sends from the queues and sends them.
// It reports false if there was nothing to claim: the queues are empty,
// or another writer holds the claim and will send what is left.
func (w *writer) sendOnce() bool {
	s, ms, failed := w.s, w.ms, w.failed
	out := s.sched.claim(w.out[:0])
	if len(out) == 0 {
		return false
	}
	defer s.sched.release()
	for i, p := range out {
		ms[i].Buffers[0], ms[i].Addr = p.buf, p.addr
		ms[i].OOB = ms[i].OOB[:0]
		if p.seg > 0 {
			ms[i].OOB = appendSegmentSize(ms[i].OOB, p.seg)
		}
		failed[i] = false
	}
	writeAll(w.bc, ms[:len(out)], func(i int, err error) {
		if out[i].seg > 0 && offloadRefused(err) {
			err = s.sendApart(w.bc, out[i])
			out[i].seg = 0 // sent apart: not a run
		}
		if err != nil {
			failed[i] = true
			s.stats.writeError.Add(uint64(out[i].datagrams()))
			s.logs.logf(slog.LevelWarn, "relay write failed", "to", out[i].addr.String(), "err", err)
		}
	})
	for i, p := range out {
		switch {
		case failed[i]:
		case p.data:
			s.stats.forwarded.Add(uint64(p.datagrams()))
			s.stats.forwardedBytes.Add(uint64(len(p.buf) - p.datagrams()*DataHeaderLen))
			if p.seg > 0 {
				s.stats.runs.Add(1)
				s.stats.runFrames.Add(uint64(p.n))
			}
		default:
			s.stats.replies.Add(1)
		}
		if p.data {
			putBuf(p.buf)
		}
		ms[i].Buffers[0], ms[i].Addr = nil, nil
		out[i] = outPkt{}
	}
	return true
}

// sendApart sends a run the kernel refused to segment as separate
// datagrams, and turns runs off for good: the socket's device cannot
// checksum them.
func (s *Server) sendApart(bc batchConn, p outPkt) error {
	if s.gso.Swap(false) {
		s.log.Warn("relay: the kernel refused a UDP segmentation offload send; sending datagrams one by one")
	}
	var ms []ipv4.Message
	for b := range segments(p.buf, p.seg) {
		ms = append(ms, ipv4.Message{Buffers: [][]byte{b}, Addr: p.addr})
	}
	var first error
	writeAll(bc, ms, func(_ int, err error) {
		if first == nil {
			first = err
		}
	})
	return first
}
