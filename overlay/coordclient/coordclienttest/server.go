package coordclienttest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrennet/warren/overlay/wire"
)

// Option configures a Server.
type Option func(*config)

type config struct {
	plain             bool
	heartbeatInterval time.Duration
	heartbeatTimeout  time.Duration
}

// PlainHTTP serves http:// (HTTP/1.1 only) instead of https:// with a
// self-signed certificate and HTTP/2.
func PlainHTTP() Option { return func(c *config) { c.plain = true } }

// Heartbeat sets how often the fake pings each stream and how long it
// tolerates a silent node. Zeros mean the wire defaults.
func Heartbeat(interval, timeout time.Duration) Option {
	return func(c *config) { c.heartbeatInterval, c.heartbeatTimeout = interval, timeout }
}

// Server is a fake coordinator. Its methods are safe for concurrent use.
type Server struct {
	// URL is the base URL, https://127.0.0.1:PORT or http://….
	URL string
	// Pin is the SHA-256 of the TLS certificate; empty with PlainHTTP.
	Pin string

	cfg     config
	srv     *httptest.Server
	admin   wire.Token
	closing chan struct{} // closed by Close: every stream ends
	once    sync.Once
	wg      sync.WaitGroup // stream readers, which may outlive their handler

	mu sync.Mutex
	// Guarded by mu:
	version  uint64
	tokens   []*token
	nodes    map[string]*node // by name
	routes   map[netip.Prefix]wire.Route
	streams  map[*stream]struct{}
	silent   bool
	policy   wire.NetMapPolicy  // what each client's netmap carries
	fail     map[string]failure // by "METHOD /path"
	nextAddr netip.Addr
	nextID   int
}

type token struct {
	info   wire.TokenInfo
	secret string
}

type node struct {
	wire.NodeStatus
	credential string
	connects   int
	sent       uint64 // last netmap version sent
}

type stream struct {
	node    string
	changed chan struct{} // cap 1: the node's netmap may have changed
	extra   chan []byte   // lines Send queued for the stream
	kill    chan struct{} // closed to end the stream
	killed  bool          // guarded by Server.mu
}

type failure struct {
	status int
	err    wire.Error
}

// New starts a fake coordinator and stops it when the test ends.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{
		closing:  make(chan struct{}),
		nodes:    map[string]*node{},
		routes:   map[netip.Prefix]wire.Route{},
		streams:  map[*stream]struct{}{},
		fail:     map[string]failure{},
		nextAddr: netip.MustParseAddr("100.96.0.1"),
		version:  1,
	}
	for _, o := range opts {
		o(&s.cfg)
	}
	if s.cfg.heartbeatInterval == 0 {
		s.cfg.heartbeatInterval = wire.HeartbeatInterval
	}
	if s.cfg.heartbeatTimeout == 0 {
		s.cfg.heartbeatTimeout = wire.HeartbeatTimeout
	}
	s.srv = httptest.NewUnstartedServer(s.handler())
	// Handshake failures are expected in pin tests: keep them out of the
	// output unless the test fails or runs verbose.
	s.srv.Config.ErrorLog = log.New(testLogWriter{t}, "coordclienttest: ", 0)
	if s.cfg.plain {
		s.srv.Start()
	} else {
		s.srv.EnableHTTP2 = true
		s.srv.StartTLS()
		sum := sha256.Sum256(s.srv.Certificate().Raw)
		s.Pin = hex.EncodeToString(sum[:])
	}
	s.URL = s.srv.URL
	s.admin = wire.Token{URL: s.URL, Pin: s.Pin, Secret: newSecret()}
	t.Cleanup(s.Close)
	return s
}

// Close ends every stream, stops the server and waits for its goroutines.
// It is idempotent.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.closing)
		s.srv.CloseClientConnections()
		s.srv.Close()
		s.wg.Wait()
	})
}

// AdminToken returns a token with the admin role.
func (s *Server) AdminToken() wire.Token { return s.admin }

// CreateToken creates an enrollment token, as POST PathTokens would.
func (s *Server) CreateToken(req wire.CreateTokenRequest) (wire.Token, error) {
	resp, status, werr := s.createToken(req)
	if status != 0 {
		return wire.Token{}, &werr
	}
	return wire.ParseToken(resp.Token)
}

// Enroll enrolls a node directly, as if it had used a token of the given
// role and name, and returns what POST PathEnroll would.
func (s *Server) Enroll(name string, role wire.Role, pub wire.Key) (wire.EnrollResponse, error) {
	tok, err := s.CreateToken(wire.CreateTokenRequest{Role: role, Name: name})
	if err != nil {
		return wire.EnrollResponse{}, err
	}
	resp, status, werr := s.enroll(tok.Secret, wire.EnrollRequest{PublicKey: pub})
	if status != 0 {
		return wire.EnrollResponse{}, &werr
	}
	return resp, nil
}

// Bump makes a change that affects every node: the version increases and
// every stream receives a new netmap. It returns the new version.
func (s *Server) Bump() uint64 {
	s.mu.Lock()
	v := s.changeLocked()
	chs := s.changedLocked()
	s.mu.Unlock()
	notify(chs)
	return v
}

// Version returns the state version, which every netmap carries.
func (s *Server) Version() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version
}

// DropStreams ends every open stream, as a coordinator restart would, and
// returns how many it ended.
func (s *Server) DropStreams() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for st := range s.streams {
		if !st.killed {
			st.killed = true
			close(st.kill)
			n++
		}
	}
	return n
}

// Send queues m, encoded as one JSON line, on every open stream of the
// named node and returns how many streams it was queued on. m may be any
// value: tests send message types no coordinator knows yet.
func (s *Server) Send(name string, m any) (int, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for st := range s.streams {
		if st.node == name && !st.killed {
			select {
			case st.extra <- b:
				n++
			default:
			}
		}
	}
	return n, nil
}

// SendDenial reports rec to the named client, as the coordinator does
// when a connector refuses one of its flows.
func (s *Server) SendDenial(name string, rec wire.FlowRecord) (int, error) {
	return s.Send(name, wire.StreamMessage{Type: wire.MsgDenial, Denial: &rec})
}

// SetPolicy sets the access policy every client's netmap carries and
// pushes the change.
func (s *Server) SetPolicy(p wire.NetMapPolicy) uint64 {
	s.mu.Lock()
	s.policy = p
	v := s.changeLocked()
	chs := s.changedLocked()
	s.mu.Unlock()
	notify(chs)
	return v
}

// SetSilent stops (true) or resumes (false) everything the fake sends on
// open streams, pings and netmaps alike, while keeping them open.
func (s *Server) SetSilent(silent bool) {
	s.mu.Lock()
	s.silent = silent
	chs := s.changedLocked()
	s.mu.Unlock()
	notify(chs)
}

// FailNext makes the next request for method and path (without query)
// answer status with body e.
func (s *Server) FailNext(method, path string, status int, e wire.Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail[method+" "+path] = failure{status: status, err: e}
}

// Acked returns the netmap version the named node last acknowledged.
func (s *Server) Acked(name string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.nodes[name]; n != nil {
		return n.AppliedVersion
	}
	return 0
}

// Connects returns how many streams the named node has opened.
func (s *Server) Connects(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.nodes[name]; n != nil {
		return n.connects
	}
	return 0
}

// Online reports whether the named node holds a stream.
func (s *Server) Online(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.onlineLocked(name)
}

func (s *Server) onlineLocked(name string) bool {
	for st := range s.streams {
		if st.node == name && !st.killed {
			return true
		}
	}
	return false
}

// changeLocked records a state change.
func (s *Server) changeLocked() uint64 {
	s.version++
	return s.version
}

// changedLocked returns the channels to signal once mu is released.
func (s *Server) changedLocked() []chan struct{} {
	var chs []chan struct{}
	for st := range s.streams {
		chs = append(chs, st.changed)
	}
	return chs
}

func notify(chs []chan struct{}) {
	for _, c := range chs {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

type testLogWriter struct{ t testing.TB }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func newSecret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// handler routes the API.
func (s *Server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+wire.PathEnroll, s.handleEnroll)
	mux.HandleFunc("POST "+wire.PathStream, s.handleStream)
	mux.HandleFunc("GET "+wire.PathHealth, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("POST "+wire.PathTokens, s.requireAdmin(s.handleCreateToken))
	mux.HandleFunc("GET "+wire.PathTokens, s.requireAdmin(s.handleTokens))
	mux.HandleFunc("DELETE "+wire.PathTokens+"/{id}", s.requireAdmin(s.handleRevokeToken))
	mux.HandleFunc("GET "+wire.PathRoutes, s.requireAdmin(s.handleRoutes))
	mux.HandleFunc("POST "+wire.PathRoutes, s.requireAdmin(s.handleAddRoute))
	mux.HandleFunc("DELETE "+wire.PathRoutes+"/{addr}/{bits}", s.requireAdmin(s.handleDeleteRoute))
	mux.HandleFunc("GET "+wire.PathRouteLookup, s.requireAdmin(s.handleLookup))
	mux.HandleFunc("GET "+wire.PathNodes, s.requireAdmin(s.handleNodes))
	mux.HandleFunc("DELETE "+wire.PathNodes+"/{name}", s.requireAdmin(s.handleRemoveNode))
	mux.HandleFunc("GET "+wire.PathExport, s.requireAdmin(s.handleExport))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == wire.PathStream {
			// See handleStream: before any answer, errors included.
			_ = http.NewResponseController(w).EnableFullDuplex()
		}
		s.mu.Lock()
		f, ok := s.fail[r.Method+" "+r.URL.Path]
		delete(s.fail, r.Method+" "+r.URL.Path)
		s.mu.Unlock()
		if ok {
			writeError(w, f.status, f.err.Code, f.err.Message)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func bearer(r *http.Request) string {
	v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return ""
	}
	return v
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, wire.Error{Message: msg, Code: code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, wire.CodeInvalid, "request body: "+err.Error())
		return false
	}
	return true
}

// requireAdmin wraps an admin handler with the admin-token check.
func (s *Server) requireAdmin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if bearer(r) != s.admin.Secret {
			writeError(w, http.StatusUnauthorized, wire.CodeUnauthorized, "this call needs an admin token")
			return
		}
		h(w, r)
	}
}

func (s *Server) handleEnroll(w http.ResponseWriter, r *http.Request) {
	var req wire.EnrollRequest
	if !readJSON(w, r, &req) {
		return
	}
	resp, status, werr := s.enroll(bearer(r), req)
	if status != 0 {
		writeJSON(w, status, werr)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// enroll returns status 0 on success.
func (s *Server) enroll(secret string, req wire.EnrollRequest) (wire.EnrollResponse, int, wire.Error) {
	if err := req.Validate(); err != nil {
		return wire.EnrollResponse{}, http.StatusBadRequest, wire.Error{Message: err.Error(), Code: wire.CodeInvalid}
	}
	s.mu.Lock()
	var tok *token
	for _, t := range s.tokens {
		if secret != "" && t.secret == secret {
			tok = t
		}
	}
	if tok == nil {
		s.mu.Unlock()
		return wire.EnrollResponse{}, http.StatusUnauthorized, wire.Error{Message: "unknown token", Code: wire.CodeUnauthorized}
	}
	switch tok.info.State(time.Now()) {
	case wire.TokenRevoked:
		s.mu.Unlock()
		return wire.EnrollResponse{}, http.StatusUnauthorized, wire.Error{Message: "this token was revoked", Code: wire.CodeTokenRevoked}
	case wire.TokenExpired:
		s.mu.Unlock()
		return wire.EnrollResponse{}, http.StatusUnauthorized, wire.Error{Message: "this token has expired", Code: wire.CodeTokenExpired}
	case wire.TokenUsed:
		s.mu.Unlock()
		return wire.EnrollResponse{}, http.StatusUnauthorized, wire.Error{Message: "this token was already used", Code: wire.CodeTokenUsed}
	}
	name := tok.info.Name
	if tok.info.Reusable {
		name = fmt.Sprintf("%s-%d", name, tok.info.Uses+1)
	}
	if s.nodes[name] != nil {
		s.mu.Unlock()
		return wire.EnrollResponse{}, http.StatusConflict, wire.Error{Message: fmt.Sprintf("a node named %q is already enrolled", name), Code: wire.CodeConflict}
	}
	tok.info.Uses++
	s.nextID++
	n := &node{credential: newSecret()}
	n.Node = wire.Node{ID: fmt.Sprintf("n%d", s.nextID), Name: name, Role: tok.info.Role, User: tok.info.User, PublicKey: req.PublicKey, Address: s.nextAddr}
	n.EnrolledAt = time.Now().UTC()
	s.nextAddr = s.nextAddr.Next()
	s.nodes[name] = n
	s.changeLocked()
	chs := s.changedLocked()
	resp := wire.EnrollResponse{Node: n.Node, Credential: n.credential}
	s.mu.Unlock()
	notify(chs)
	return resp, 0, wire.Error{}
}

func (s *Server) handleCreateToken(w http.ResponseWriter, r *http.Request) {
	var req wire.CreateTokenRequest
	if !readJSON(w, r, &req) {
		return
	}
	resp, status, werr := s.createToken(req)
	if status != 0 {
		writeJSON(w, status, werr)
		return
	}
	writeJSON(w, http.StatusCreated, resp)
}

func (s *Server) createToken(req wire.CreateTokenRequest) (wire.CreateTokenResponse, int, wire.Error) {
	if err := req.Validate(); err != nil {
		return wire.CreateTokenResponse{}, http.StatusBadRequest, wire.Error{Message: err.Error(), Code: wire.CodeInvalid}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	t := &token{secret: newSecret(), info: wire.TokenInfo{
		ID: fmt.Sprintf("t%d", s.nextID), Name: req.Name, Role: req.Role, User: req.User,
		Reusable: req.Reusable, CreatedAt: time.Now().UTC(),
	}}
	if req.ExpiresIn > 0 {
		exp := t.info.CreatedAt.Add(time.Duration(req.ExpiresIn))
		t.info.ExpiresAt = &exp
	}
	s.tokens = append(s.tokens, t)
	s.changeLocked()
	tok := wire.Token{URL: s.URL, Pin: s.Pin, Secret: t.secret}
	return wire.CreateTokenResponse{Token: tok.String(), Info: t.info}, 0, wire.Error{}
}

func (s *Server) handleTokens(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.tokenInfos())
}

func (s *Server) tokenInfos() []wire.TokenInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []wire.TokenInfo{}
	for _, t := range s.tokens {
		out = append(out, t.info)
	}
	return out
}

func (s *Server) handleRevokeToken(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.tokens {
		if t.info.ID == id {
			t.info.Revoked = true
			s.changeLocked()
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	writeError(w, http.StatusNotFound, wire.CodeNotFound, fmt.Sprintf("no token with ID %q", id))
}

func (s *Server) handleRoutes(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.routeList())
}

func (s *Server) routeList() []wire.Route {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.routeListLocked()
}

func (s *Server) routeListLocked() []wire.Route {
	out := []wire.Route{}
	for _, r := range s.routes {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b wire.Route) int {
		if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
			return c
		}
		return a.Prefix.Bits() - b.Prefix.Bits()
	})
	return out
}

func (s *Server) handleAddRoute(w http.ResponseWriter, r *http.Request) {
	var req wire.AddRouteRequest
	if !readJSON(w, r, &req) {
		return
	}
	p, err := netip.ParsePrefix(req.Prefix)
	if err != nil {
		writeError(w, http.StatusBadRequest, wire.CodeInvalid, fmt.Sprintf("%q is not a CIDR prefix", req.Prefix))
		return
	}
	if p != p.Masked() {
		writeError(w, http.StatusBadRequest, wire.CodeInvalid, fmt.Sprintf("%v has host bits set; did you mean %v?", p, p.Masked()))
		return
	}
	if err := wire.ValidateName(req.Connector); err != nil {
		writeError(w, http.StatusBadRequest, wire.CodeInvalid, err.Error())
		return
	}
	s.mu.Lock()
	if _, ok := s.routes[p]; ok {
		s.mu.Unlock()
		writeError(w, http.StatusConflict, wire.CodeConflict, fmt.Sprintf("a route for %v already exists", p))
		return
	}
	rt := wire.Route{Prefix: p, Connector: req.Connector, Comment: req.Comment, CreatedAt: time.Now().UTC()}
	s.routes[p] = rt
	s.changeLocked()
	chs := s.changedLocked()
	s.mu.Unlock()
	notify(chs)
	writeJSON(w, http.StatusOK, rt)
}

func (s *Server) handleDeleteRoute(w http.ResponseWriter, r *http.Request) {
	p, err := netip.ParsePrefix(r.PathValue("addr") + "/" + r.PathValue("bits"))
	if err != nil {
		writeError(w, http.StatusBadRequest, wire.CodeInvalid, "not a CIDR prefix")
		return
	}
	s.mu.Lock()
	if _, ok := s.routes[p]; !ok {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, wire.CodeNotFound, fmt.Sprintf("no route for %v", p))
		return
	}
	delete(s.routes, p)
	s.changeLocked()
	chs := s.changedLocked()
	s.mu.Unlock()
	notify(chs)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleLookup(w http.ResponseWriter, r *http.Request) {
	ip, err := netip.ParseAddr(r.URL.Query().Get("ip"))
	if err != nil {
		writeError(w, http.StatusBadRequest, wire.CodeInvalid, fmt.Sprintf("%q is not an IP address", r.URL.Query().Get("ip")))
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	res := wire.RouteLookup{IP: ip, Reason: fmt.Sprintf("no route covers %v", ip)}
	for _, rt := range s.routes {
		if rt.Prefix.Contains(ip) && (res.Route == nil || rt.Prefix.Bits() > res.Route.Prefix.Bits()) {
			res.Route = &rt
		}
	}
	if res.Route != nil {
		res.Online = s.onlineLocked(res.Route.Connector)
		res.Reason = fmt.Sprintf("%v is served by connector %s", res.Route.Prefix, res.Route.Connector)
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) handleNodes(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	out := []wire.NodeStatus{}
	for _, n := range s.nodes {
		st := n.NodeStatus
		st.Online = s.onlineLocked(n.Name)
		st.InSync = n.AppliedVersion == n.sent
		out = append(out, st)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b wire.NodeStatus) int { return strings.Compare(a.Name, b.Name) })
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleRemoveNode(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	s.mu.Lock()
	if s.nodes[name] == nil {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, wire.CodeNotFound, fmt.Sprintf("no node named %q", name))
		return
	}
	delete(s.nodes, name)
	for st := range s.streams {
		if st.node == name && !st.killed {
			st.killed = true
			close(st.kill)
		}
	}
	s.changeLocked()
	chs := s.changedLocked()
	s.mu.Unlock()
	notify(chs)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleExport(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	e := wire.Export{Version: s.version, Tokens: []wire.TokenInfo{}, Nodes: []wire.Node{}, Routes: s.routeListLocked(), Split: defaultSplit()}
	for _, t := range s.tokens {
		e.Tokens = append(e.Tokens, t.info)
	}
	for _, n := range s.nodes {
		e.Nodes = append(e.Nodes, n.Node)
	}
	s.mu.Unlock()
	slices.SortFunc(e.Nodes, func(a, b wire.Node) int { return strings.Compare(a.Name, b.Name) })
	writeJSON(w, http.StatusOK, e)
}
