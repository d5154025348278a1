package relay

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"
	"golang.zx2c4.com/wireguard/conn"

	"github.com/warrennet/warren/overlay/wire"
)

// DefaultKeepaliveInterval is how often a Bind sends a HELLO unless
// configured otherwise.
const DefaultKeepaliveInterval = 15 * time.Second

const (
	// EndpointPrefix starts the UAPI endpoint of a peer reached through
	// the relay: "relay:" and the peer's base64 public key.
	EndpointPrefix = "relay:"

	firstRetry   = time.Second // first resend of an unanswered HELLO; doubles up to the interval
	minHelloGap  = time.Second // between HELLOs the relay asked for
	maxEndpoints = 4096        // endpoints cached; more are made afresh each time
	helloCap     = helloFixedLen + maxClaimsLen
)

// BindConfig configures a Bind.
type BindConfig struct {
	// Logger receives relay state changes and rate-limited per-packet
	// errors. Nil discards.
	Logger *slog.Logger
	// KeepaliveInterval is how often the Bind sends a HELLO while open,
	// keeping its registration at the relay and its NAT mapping alive.
	// Zero means DefaultKeepaliveInterval. Keep it well under
	// RegistrationTimeout.
	KeepaliveInterval time.Duration
	// RelayOnly turns the direct path off: the Bind neither looks for
	// one nor answers a peer that does.
	RelayOnly bool
	// Exclude reports addresses the Bind must never send to directly,
	// nor offer as its own: those the tunnel itself routes (its routes
	// and overlay addresses), which would carry the tunnel inside
	// itself. Nil excludes nothing but loopback and link-local
	// addresses. It is called from the Bind's goroutines and must be
	// safe for concurrent use.
	Exclude func(netip.Addr) bool
}

// ErrNoRelay is returned by Send while no relay address or no usable
// credential is set.
var ErrNoRelay = errors.New("relay bind: no relay configured")

var errMarkUnsupported = errors.New("relay bind: fwmark is not supported")

// Bind is the node side of the relay: a wireguard-go conn.Bind whose
// peers are named by public key ("relay:<key>") and reached through the
// relay. Send wraps each WireGuard datagram in a DATA frame addressed to
// the peer's key and sends it to the relay; DATA frames from the relay are
// unwrapped and reported as coming from the endpoint of their source key.
//
// The Bind owns one UDP socket (the unspecified address; the port Open
// is given, or a random one) while open, and one goroutine that sends a
// HELLO at once and every KeepaliveInterval, sooner while unanswered.
// Close closes the socket, which makes the ReceiveFuncs return
// net.ErrClosed, and stops the goroutine before it returns. Open after
// Close opens afresh; wireguard-go does this on every BindUpdate.
//
// All methods are safe for concurrent use.
type Bind struct {
	log       *slog.Logger
	logs      *logLimiter
	interval  time.Duration
	relayOnly bool
	exclude   func(netip.Addr) bool
	// listAddrs lists the host's addresses for CALLs, and allowLoopback
	// lets loopback candidates through; tests change both.
	listAddrs     func() ([]netip.Addr, error)
	allowLoopback bool
	idleAfter     time.Duration // a peer unused this long is idle: activeFor
	// wrapConn, if set, wraps each socket's batchConn; tests use it to
	// play a kernel that refuses segmentation offload.
	wrapConn func(batchConn) batchConn

	target  atomic.Pointer[target]  // set by SetRelay; replaced, never modified
	ack     atomic.Pointer[ackInfo] // the last genuine HELLO-ACK
	refusal atomic.Pointer[refusalInfo]
	lastTS  atomic.Uint64 // the last HELLO timestamp used; only grows

	mu   sync.Mutex // serialises Open and Close; guards open
	open *socket    // nil while closed
	live atomic.Pointer[socket]

	endpoints  sync.Map // wire.Key → *Endpoint
	nEndpoints atomic.Int64

	sendPool sync.Pool // *sendBatch
	recvPool sync.Pool // *recvBatch
}

var _ conn.Bind = (*Bind)(nil)

// target is a relay address with the credential to present there.
type target struct {
	relay netip.AddrPort
	udp   *net.UDPAddr
	text  string          // the credential as given, to spot a change
	cred  *nodeCredential // nil if text did not parse
	// minTS is the HELLO timestamp in use when the target was set: only
	// an ACK of a later HELLO belongs to this target.
	minTS uint64
}

func (t *target) usable() bool { return t != nil && t.relay.IsValid() && t.cred != nil }

type ackInfo struct {
	t        *target
	s        *socket
	ts       uint64
	at       time.Time
	observed netip.AddrPort
}

type refusalInfo struct {
	code Code
	key  wire.Key
	at   time.Time
}

// socket is one open period of the Bind.
type socket struct {
	conn   *net.UDPConn
	bc     batchConn
	closed atomic.Bool
	// gso: sends may carry runs of datagrams (UDP_SEGMENT); cleared for
	// good when the kernel refuses one. gro: reads may return runs
	// (UDP_GRO).
	gso  atomic.Bool
	gro  bool
	kick chan struct{} // capacity 1: the relay asked for a HELLO, or the target changed
	// urgent asks the keepalive loop to send the HELLO the kick wakes it
	// for at once, however recent the last (NetworkChanged).
	urgent atomic.Bool
	// confirmAfter: only an ACK of a HELLO with this timestamp or a later
	// one confirms the socket's registration (NetworkChanged raises it).
	confirmAfter atomic.Uint64
	stop         chan struct{}  // closed by Close
	loops        sync.WaitGroup // the keepalive and discovery loops
	// disco finds and keeps direct paths; nil if the Bind is RelayOnly.
	disco *discovery
	// held is what Send was asked to relay before the relay confirmed
	// this socket's registration (hold.go).
	held held
}

// sendBatch is Send's scratch space. Both ways gather each frame from
// the DATA header and the datagram, without copying: ms sends one frame
// per message, runs one GSO run per message, with perRun[i] frames in
// runs[i], whose buffers are slices of iovs.
type sendBatch struct {
	hdr    [DataHeaderLen]byte
	ms     []ipv4.Message
	runs   []ipv4.Message
	perRun []int
	iovs   [][]byte
}

// recvBatch is a receive function's scratch space: one message per
// datagram (or per run, with room for its segment size in OOB).
type recvBatch struct {
	ms []ipv4.Message
}

// NewBind returns a closed Bind with no relay set.
func NewBind(cfg BindConfig) *Bind {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.KeepaliveInterval <= 0 {
		cfg.KeepaliveInterval = DefaultKeepaliveInterval
	}
	b := &Bind{
		log:       cfg.Logger,
		logs:      newLogLimiter(cfg.Logger, logEvery),
		interval:  cfg.KeepaliveInterval,
		relayOnly: cfg.RelayOnly,
		exclude:   cfg.Exclude,
		listAddrs: interfaceAddrs,
		idleAfter: activeFor,
	}
	b.sendPool.New = func() any {
		sb := &sendBatch{
			ms:     make([]ipv4.Message, conn.IdealBatchSize),
			runs:   make([]ipv4.Message, conn.IdealBatchSize),
			perRun: make([]int, conn.IdealBatchSize),
			iovs:   make([][]byte, 2*conn.IdealBatchSize),
		}
		for i := range sb.ms {
			sb.ms[i].Buffers = make([][]byte, 2)
			sb.runs[i].OOB = make([]byte, 0, offloadSpace)
		}
		return sb
	}
	b.recvPool.New = func() any {
		rb := &recvBatch{ms: make([]ipv4.Message, conn.IdealBatchSize)}
		for i := range rb.ms {
			rb.ms[i].Buffers = make([][]byte, 1)
			rb.ms[i].OOB = make([]byte, 0, offloadSpace)
		}
		return rb
	}
	return b
}

// SetRelay sets the relay's address and this node's credential for it.
// It may be called at any time, open or closed. A change takes effect at
// once: an open Bind sends a HELLO to the (new) relay immediately. The
// same values again change nothing. The zero address turns the relay
// off. An unparsable credential is logged (never its text) and leaves the
// Bind without a usable relay until a good one is set.
func (b *Bind) SetRelay(addr netip.AddrPort, credential string) {
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	if old := b.target.Load(); old != nil && old.relay == addr && old.text == credential {
		return
	}
	t := &target{relay: addr, text: credential, minTS: b.lastTS.Load()}
	if addr.IsValid() {
		t.udp = net.UDPAddrFromAddrPort(addr)
	}
	if credential != "" {
		nc, err := parseNodeCredential(credential)
		if err != nil {
			b.log.Warn("relay credential is unusable; relay path off until a new one arrives", "relay", addr.String(), "err", err)
		}
		t.cred = nc
	}
	b.target.Store(t)
	b.log.Info("relay set", "relay", addr.String(), "credential", t.cred != nil)
	if s := b.live.Load(); s != nil {
		s.poke()
	}
}

// BindStatus is the Bind's view of its relay, for `warren status`.
type BindStatus struct {
	// Relay is the address SetRelay set; the zero AddrPort if none.
	Relay netip.AddrPort
	// Connected reports whether the Bind is open and the relay confirmed
	// its registration recently enough for it to be live.
	Connected bool
	// LastAck is when the relay last confirmed the registration of this
	// socket, relay and credential; zero if it has not.
	LastAck time.Time
	// Observed is this node's address as the relay last saw it: its
	// public address when behind NAT.
	Observed netip.AddrPort
	// LastRefusal is the relay's last refusal and when it came; zero if
	// none. Refusals are not authenticated: a hint, not a fact.
	LastRefusal   Code
	LastRefusalAt time.Time
}

// Status returns the relay state.
func (b *Bind) Status() BindStatus {
	var st BindStatus
	t := b.target.Load()
	if t != nil {
		st.Relay = t.relay
	}
	if a := b.currentAck(t); a != nil {
		st.LastAck, st.Observed = a.at, a.observed
		st.Connected = time.Since(a.at) < b.liveFor()
	}
	if r := b.refusal.Load(); r != nil {
		st.LastRefusal, st.LastRefusalAt = r.code, r.at
	}
	return st
}

// Connected reports whether the Bind is open and its registration at the
// relay is live, as far as the relay's last HELLO-ACK says.
func (b *Bind) Connected() bool { return b.Status().Connected }

// Direct returns the address of the direct path to peer k, or the zero
// AddrPort if Send reaches k through the relay.
func (b *Bind) Direct(k wire.Key) netip.AddrPort {
	v, ok := b.endpoints.Load(k)
	if !ok {
		return netip.AddrPort{}
	}
	if path := v.(*Endpoint).direct.Load(); path != nil && path.s == b.live.Load() {
		return path.addr
	}
	return netip.AddrPort{}
}

// currentAck returns the last ACK if it belongs to t and the open socket.
func (b *Bind) currentAck(t *target) *ackInfo {
	a := b.ack.Load()
	if a == nil || t == nil || a.t != t || a.s != b.live.Load() {
		return nil
	}
	return a
}

// liveFor is how long after an ACK the registration counts as live: three
// keepalives, and never past the relay's timeout.
func (b *Bind) liveFor() time.Duration { return min(3*b.interval, RegistrationTimeout) }

// Open implements conn.Bind. It opens the UDP socket on port (zero picks
// one) and starts sending HELLOs.
func (b *Bind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open != nil {
		return nil, 0, conn.ErrBindAlreadyOpen
	}
	c, err := net.ListenUDP("udp", &net.UDPAddr{Port: int(port)})
	if err != nil {
		return nil, 0, fmt.Errorf("relay bind: listening on UDP port %d: %w", port, err)
	}
	growBuffers(c, nodeSocketBuffer)
	s := &socket{
		conn: c,
		bc:   newBatchConn(c),
		kick: make(chan struct{}, 1),
		stop: make(chan struct{}),
	}
	var gso bool
	gso, s.gro = enableOffload(c)
	s.gso.Store(gso)
	if b.wrapConn != nil {
		s.bc = b.wrapConn(s.bc)
	}
	if !b.relayOnly {
		s.disco = newDiscovery(b, s)
		s.loops.Go(func() { s.disco.run(s.stop) })
	}
	b.open = s
	b.live.Store(s)
	s.loops.Go(func() { b.keepalive(s) })
	return []conn.ReceiveFunc{b.receiveFunc(s)}, uint16(c.LocalAddr().(*net.UDPAddr).Port), nil
}

// Close implements conn.Bind: it closes the socket, so that the
// ReceiveFuncs return net.ErrClosed and Send fails with it, and stops the
// keepalive goroutine before returning. Closing a closed Bind does
// nothing.
func (b *Bind) Close() error {
	b.mu.Lock()
	s := b.open
	b.open = nil
	b.live.Store(nil)
	b.mu.Unlock()
	if s == nil {
		return nil
	}
	s.closed.Store(true)
	err := s.conn.Close()
	close(s.stop)
	s.loops.Wait()
	if s.disco != nil {
		s.disco.close()
	}
	if err != nil {
		return fmt.Errorf("relay bind: closing socket: %w", err)
	}
	return nil
}

// SetMark implements conn.Bind. Marks are not supported; zero is
// accepted, as it asks for nothing.
func (b *Bind) SetMark(mark uint32) error {
	if mark != 0 {
		return errMarkUnsupported
	}
	return nil
}

// BatchSize implements conn.Bind.
func (b *Bind) BatchSize() int { return conn.IdealBatchSize }

// ParseEndpoint implements conn.Bind. It accepts "relay:" followed by a
// peer's base64 WireGuard public key.
func (b *Bind) ParseEndpoint(s string) (conn.Endpoint, error) {
	// A direct path would also accept "ip:port" here.
	rest, ok := strings.CutPrefix(s, EndpointPrefix)
	if !ok {
		return nil, fmt.Errorf("relay bind: endpoint %q is not %s<base64 public key>", s, EndpointPrefix)
	}
	k, err := wire.ParseKey(rest)
	if err != nil {
		return nil, fmt.Errorf("relay bind: endpoint %q: %w", s, err)
	}
	return b.endpoint(k), nil
}

// endpoint returns the endpoint of k, cached.
func (b *Bind) endpoint(k wire.Key) *Endpoint {
	if v, ok := b.endpoints.Load(k); ok {
		return v.(*Endpoint)
	}
	e := newEndpoint(k)
	if b.nEndpoints.Load() < maxEndpoints {
		v, loaded := b.endpoints.LoadOrStore(k, e)
		if !loaded {
			b.nEndpoints.Add(1)
		}
		return v.(*Endpoint)
	}
	return e
}

// Endpoint is a peer, named by its WireGuard public key, reached through
// the relay or, once one is confirmed, on a direct path. It implements
// conn.Endpoint. Its name never changes, so wireguard-go never sees the
// path change; the Bind picks the path on every Send.
type Endpoint struct {
	key wire.Key
	dst string
	ip  netip.Addr

	direct   atomic.Pointer[directPath] // nil: through the relay
	lastSend atomic.Int64               // UnixNano of the last Send to it
}

var _ conn.Endpoint = (*Endpoint)(nil)

func newEndpoint(k wire.Key) *Endpoint {
	// A synthetic address in fd00::/8 made from the key. It is never
	// routed or dialled: wireguard-go's handshake rate limiter keys on
	// DstIP when under load, and this keeps relayed peers apart there.
	var a [16]byte
	a[0] = 0xfd
	copy(a[1:], k[:15])
	return &Endpoint{key: k, dst: EndpointPrefix + k.String(), ip: netip.AddrFrom16(a)}
}

// Key returns the peer's public key.
func (e *Endpoint) Key() wire.Key { return e.key }

// ClearSrc implements conn.Endpoint; a relayed endpoint has no source.
func (e *Endpoint) ClearSrc() {}

// SrcToString implements conn.Endpoint.
func (e *Endpoint) SrcToString() string { return "" }

// DstToString implements conn.Endpoint: "relay:<base64 key>", which
// ParseEndpoint reads back, so UAPI get and set agree.
func (e *Endpoint) DstToString() string { return e.dst }

// DstToBytes implements conn.Endpoint: the key, which wireguard-go MACs
// into cookies as the peer's address.
func (e *Endpoint) DstToBytes() []byte { return append([]byte(nil), e.key[:]...) }

// DstIP implements conn.Endpoint: the synthetic address described in
// newEndpoint.
func (e *Endpoint) DstIP() netip.Addr { return e.ip }

// SrcIP implements conn.Endpoint; a relayed endpoint has no source.
func (e *Endpoint) SrcIP() netip.Addr { return netip.Addr{} }
