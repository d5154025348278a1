package coord

import (
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/warrennet/warren/overlay/coord/sso"
	"github.com/warrennet/warren/overlay/coord/store"
	"github.com/warrennet/warren/overlay/wire"
)

// IdentityProvider is the OpenID Connect provider people log in at
// (*sso.Provider). Its methods are safe for concurrent use.
type IdentityProvider interface {
	// AuthURL returns the provider's authorization URL for one login:
	// state comes back on the callback, nonce must come back in the ID
	// token, and the PKCE challenge is S256 of verifier. It does no I/O.
	AuthURL(state, nonce, verifier string) string
	// Exchange redeems the callback's authorization code with the PKCE
	// verifier, checks the ID token (signature, issuer, audience, expiry,
	// nonce, a verified e-mail in an allowed domain) and returns the
	// person. A refusal wraps sso.ErrRefused with a one-line reason fit to
	// show the person; any other error is the provider's or the network's.
	Exchange(ctx context.Context, code, verifier, nonce string) (sso.Identity, error)
	// Refresh asks the provider about the person again with their refresh
	// token. sso.ErrRevoked (wrapped) means the provider no longer
	// accepts them; any other error says nothing about the person.
	Refresh(ctx context.Context, refreshToken string) (sso.Identity, error)
}

// DefaultMaxPendingLogins bounds the logins in progress at once.
const DefaultMaxPendingLogins = 10000

// defaultLoginName names a laptop whose hostname makes no node name.
const defaultLoginName = "laptop"

// pendingLogin is one login in progress: a laptop's key waiting for a
// person to log in. Its link ID, wait secret and state are kept only as
// hashes.
type pendingLogin struct {
	idHash, waitHash string
	code             string // shown on the page and by warren up
	key              wire.Key
	hostname         string
	expires          time.Time

	// Set when the browser opens the link: the provider redirect.
	started   bool
	stateHash string
	nonce     string
	verifier  string

	// callback says a callback is being handled (the code is being
	// exchanged); a second one is refused as used.
	callback bool
	// The outcome: refused says why the login failed; enroll is the
	// node enrolled, given once to the wait secret's holder.
	finished  bool
	refused   string
	enroll    *wire.EnrollResponse
	collected bool
	// finishedCh is closed when the login finishes.
	finishedCh chan struct{}
}

// loginTable holds the logins in progress.
type loginTable struct {
	max int
	// mu guards the maps and every pendingLogin in them. Never held
	// while calling out (the provider, the store).
	mu      sync.Mutex
	byID    map[string]*pendingLogin // by idHash
	byWait  map[string]*pendingLogin // by waitHash
	byState map[string]*pendingLogin // by stateHash
}

func newLoginTable(max int) *loginTable {
	if max <= 0 {
		max = DefaultMaxPendingLogins
	}
	return &loginTable{max: max, byID: map[string]*pendingLogin{}, byWait: map[string]*pendingLogin{}, byState: map[string]*pendingLogin{}}
}

// drop forgets l. Call with mu held.
func (t *loginTable) drop(l *pendingLogin) {
	delete(t.byID, l.idHash)
	delete(t.byWait, l.waitHash)
	if l.stateHash != "" {
		delete(t.byState, l.stateHash)
	}
}

// prune forgets every login expired at now. Call with mu held.
func (t *loginTable) prune(now time.Time) {
	for _, l := range t.byID {
		if !now.Before(l.expires) {
			t.drop(l)
		}
	}
}

func errSSODisabled() error {
	return errorf(wire.CodeSSODisabled, "this coordinator has no single sign-on; enroll with a token (warren up --token-file FILE)")
}

func errLoginExpired() error {
	return errorf(wire.CodeLoginExpired, "this login has expired (links last %v) or the coordinator restarted since it began; start again with: warren up", wire.LoginTTL)
}

func errLoginUsed() error {
	return errorf(wire.CodeLoginUsed, "this login link has already been used; start again with: warren up")
}

// CheckSSO refuses (CodeSSODisabled) when no identity provider is
// configured, so the API can refuse a login before reading its body.
func (c *Coordinator) CheckSSO() error {
	if c.idp == nil {
		return errSSODisabled()
	}
	return nil
}

// StartLogin starts enrolling the laptop whose public key and hostname req
// carries by single sign-on. The answer's URL is the login link
// (COORDINATOR/login/ID, single-use, valid wire.LoginTTL), its Code what
// the login page will show, and its WaitSecret the proof WaitLogin takes.
func (c *Coordinator) StartLogin(ctx context.Context, req wire.LoginStartRequest) (wire.LoginStartResponse, error) {
	if c.idp == nil {
		return wire.LoginStartResponse{}, errSSODisabled()
	}
	if err := req.Validate(); err != nil {
		return wire.LoginStartResponse{}, invalid(err)
	}
	if _, taken := c.snap.Load().byKey[req.PublicKey]; taken {
		return wire.LoginStartResponse{}, errorf(wire.CodeConflict, "this node's public key is already enrolled; use a fresh state directory")
	}
	id, err := c.newID(16)
	if err != nil {
		return wire.LoginStartResponse{}, err
	}
	wait, err := c.newSecret()
	if err != nil {
		return wire.LoginStartResponse{}, err
	}
	now := c.now()
	l := &pendingLogin{
		idHash:     hashSecret(id),
		waitHash:   hashSecret(wait),
		code:       loginCode(wait),
		key:        req.PublicKey,
		hostname:   req.Hostname,
		expires:    now.Add(wire.LoginTTL),
		finishedCh: make(chan struct{}),
	}
	t := c.logins
	t.mu.Lock()
	if len(t.byID) >= t.max {
		t.prune(now)
	}
	full := len(t.byID) >= t.max
	if !full {
		t.byID[l.idHash] = l
		t.byWait[l.waitHash] = l
	}
	t.mu.Unlock()
	if full {
		return wire.LoginStartResponse{}, errorf(wire.CodeRateLimited, "too many logins are in progress on this coordinator; try again in a few minutes")
	}
	c.log.Info("login started", "hostname", req.Hostname, "code", l.code)
	return wire.LoginStartResponse{
		URL:        c.url + wire.PathLoginPage + "/" + id,
		Code:       l.code,
		WaitSecret: wait,
		ExpiresAt:  l.expires.UTC(),
	}, nil
}

// codeAlphabet spells login codes: no 0/O or 1/I to confuse.
const codeAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// loginCode is the code a login shows, XXXX-XXXX: 40 bits of the wait
// secret's hash, so the laptop (which holds the secret) and the page agree
// without the code being stored anywhere else.
func loginCode(waitSecret string) string {
	h := sha256.Sum256([]byte("warren login code\x00" + waitSecret))
	var b strings.Builder
	for i := range 8 {
		if i == 4 {
			b.WriteByte('-')
		}
		b.WriteByte(codeAlphabet[h[i]&31])
	}
	return b.String()
}

// LoginPage is what opening the login link does: it returns the provider's
// authorization URL to redirect the browser to, with a fresh state, nonce
// and PKCE verifier bound to this login. The link works once: a second
// visit is refused with CodeLoginUsed, an expired one with
// CodeLoginExpired, an unknown one with CodeNotFound.
func (c *Coordinator) LoginPage(id string) (string, error) {
	if c.idp == nil {
		return "", errSSODisabled()
	}
	state, err := c.newSecret()
	if err != nil {
		return "", err
	}
	nonce, err := c.newSecret()
	if err != nil {
		return "", err
	}
	verifier, err := c.newSecret() // 43 characters of base64url: RFC 7636's minimum
	if err != nil {
		return "", err
	}
	t := c.logins
	t.mu.Lock()
	l, err := c.liveLogin(t.byID[hashSecret(id)])
	if err == nil && l.started {
		err = errLoginUsed()
	}
	if err == nil {
		l.started, l.stateHash, l.nonce, l.verifier = true, hashSecret(state), nonce, verifier
		t.byState[l.stateHash] = l
	}
	t.mu.Unlock()
	if err != nil {
		return "", err
	}
	return c.idp.AuthURL(state, nonce, verifier), nil
}

// liveLogin refuses a login that is unknown (nil) or expired, forgetting
// the latter. Call with c.logins.mu held.
func (c *Coordinator) liveLogin(l *pendingLogin) (*pendingLogin, error) {
	if l == nil {
		return nil, errorf(wire.CodeNotFound, "no such login; start one with: warren up")
	}
	if !c.now().Before(l.expires) {
		c.logins.drop(l)
		return nil, errLoginExpired()
	}
	return l, nil
}

// LoginResult is what the callback page tells the person.
type LoginResult struct {
	Email    string
	Hostname string
	Node     string
	Code     string
}

// Callback finishes a login when the provider redirects the browser back
// with state and code: it exchanges the code, records the person (user =
// their e-mail address, with their provider groups) and enrolls the
// login's key as a client node of theirs, named after the laptop's
// hostname. A state that is unknown (CodeNotFound), expired
// (CodeLoginExpired) or already called back (CodeLoginUsed) is refused
// without asking the provider; a person the provider or the coordinator
// refuses ends the login (CodeLoginRefused), and WaitLogin says so.
func (c *Coordinator) Callback(ctx context.Context, state, code string) (LoginResult, error) {
	if c.idp == nil {
		return LoginResult{}, errSSODisabled()
	}
	t := c.logins
	t.mu.Lock()
	l, err := c.liveLogin(t.byState[hashSecret(state)])
	if err == nil && (l.callback || l.finished) {
		err = errLoginUsed()
	}
	if err == nil {
		l.callback = true
	}
	t.mu.Unlock()
	if err != nil {
		return LoginResult{}, err
	}
	if code == "" {
		return LoginResult{}, c.refuseLogin(l, "the identity provider sent no authorization code")
	}

	id, err := c.idp.Exchange(ctx, code, l.verifier, l.nonce)
	if errors.Is(err, sso.ErrRefused) {
		return LoginResult{}, c.refuseLogin(l, err.Error())
	}
	if err != nil {
		c.log.Warn("login: exchanging the authorization code", "err", err)
		return LoginResult{}, c.refuseLogin(l, "the identity provider could not complete the login; try again with: warren up")
	}
	if err := wire.ValidateUser(id.Email); err != nil {
		return LoginResult{}, c.refuseLogin(l, "the identity provider's e-mail address is not usable: "+err.Error())
	}
	n, cred, err := c.loginEnroll(ctx, l, id)
	if err != nil {
		var we *wire.Error
		if errors.As(err, &we) {
			return LoginResult{}, c.refuseLogin(l, we.Message)
		}
		c.log.Error("login: enrolling the node", "user", id.Email, "err", err)
		return LoginResult{}, c.refuseLogin(l, "the coordinator could not enroll this machine; see its log")
	}
	t.mu.Lock()
	l.finished, l.enroll = true, &wire.EnrollResponse{Node: n.Node, Credential: cred}
	close(l.finishedCh)
	t.mu.Unlock()
	return LoginResult{Email: id.Email, Hostname: l.hostname, Node: n.Name, Code: l.code}, nil
}

// refuseLogin ends l as refused and returns the error for the callback.
func (c *Coordinator) refuseLogin(l *pendingLogin, why string) error {
	why = strings.Join(strings.Fields(why), " ") // one line
	c.logins.mu.Lock()
	if !l.finished {
		l.finished, l.refused = true, why
		close(l.finishedCh)
	}
	c.logins.mu.Unlock()
	c.log.Info("login refused", "hostname", l.hostname, "code", l.code, "reason", why)
	return errorf(wire.CodeLoginRefused, "%s", why)
}

// loginEnroll records the person and enrolls the login's key as their
// node, in one store transaction.
func (c *Coordinator) loginEnroll(ctx context.Context, l *pendingLogin, id sso.Identity) (store.Node, string, error) {
	cred, err := c.newSecret()
	if err != nil {
		return store.Node{}, "", err
	}
	nodeID, err := c.newID(8)
	if err != nil {
		return store.Node{}, "", err
	}
	now := c.now().UTC()
	u := store.User{
		Email: id.Email, Issuer: id.Issuer, Subject: id.Subject, Groups: id.Groups,
		LastLogin: now, ValidatedAt: now, RefreshToken: id.RefreshToken,
	}
	p := store.LoginParams{NodeID: nodeID, PublicKey: l.key, CredHash: hashSecret(cred), Name: nodeName(l.hostname), Now: now}

	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	n, version, err := c.store.LoginEnroll(ctx, u, p)
	switch {
	case errors.Is(err, store.ErrExists):
		return store.Node{}, "", errorf(wire.CodeConflict, "this machine's key is already enrolled")
	case errors.Is(err, store.ErrNameTaken):
		return store.Node{}, "", errorf(wire.CodeConflict, "too many nodes are named %s-N", p.Name)
	case errors.Is(err, store.ErrAddressSpace):
		return store.Node{}, "", errorf(wire.CodeConflict, "the overlay address space is exhausted")
	case err != nil:
		return store.Node{}, "", err
	}
	s := c.snap.Load()
	nodes := s.nodes
	if i, ok := s.userAt(u.Email); ok && (s.users[i].Issuer != u.Issuer || s.users[i].Subject != u.Subject) {
		// The store dropped the previous holder's login nodes.
		nodes = deleteLoginNodes(nodes, u.Email)
	}
	next, err := s.withUsers(version, insertSorted(nodes, n, compareNodes), putUser(s.users, u))
	if err != nil {
		return store.Node{}, "", err
	}
	c.publish(next)
	c.log.Info("node enrolled by login", "node", n.Name, "user", n.User, "address", n.Address, "groups", u.Groups)
	return n, cred, nil
}

// WaitLogin waits, up to wire.LoginWaitMax (or until ctx ends), for the
// login whose wait secret this is to finish. Done with the enrollment the
// first time it has; Done false when it has not yet. A login that expired
// or is unknown (the coordinator restarted) is CodeLoginExpired, one
// refused CodeLoginRefused, one collected before CodeLoginUsed.
func (c *Coordinator) WaitLogin(ctx context.Context, waitSecret string) (wire.LoginWaitResponse, error) {
	if c.idp == nil {
		return wire.LoginWaitResponse{}, errSSODisabled()
	}
	timer := time.NewTimer(c.loginWait)
	defer timer.Stop()
	hash := hashSecret(waitSecret)
	for {
		t := c.logins
		t.mu.Lock()
		l, err := c.liveLogin(t.byWait[hash])
		var ch chan struct{}
		var resp wire.LoginWaitResponse
		switch {
		case err != nil:
		case l.collected:
			err = errLoginUsed()
		case l.refused != "":
			err = errorf(wire.CodeLoginRefused, "%s", l.refused)
		case l.finished:
			l.collected = true
			resp = wire.LoginWaitResponse{Done: true, Enroll: l.enroll}
			l.enroll = nil // the credential is handed out once
		default:
			ch = l.finishedCh
		}
		var expires time.Time
		if l != nil {
			expires = l.expires
		}
		t.mu.Unlock()
		if err != nil {
			var we *wire.Error
			if errors.As(err, &we) && we.Code == wire.CodeNotFound {
				err = errLoginExpired()
			}
			return wire.LoginWaitResponse{}, err
		}
		if ch == nil {
			return resp, nil
		}
		expiry := time.NewTimer(expires.Sub(c.now()))
		select {
		case <-ch:
			expiry.Stop()
		case <-expiry.C:
		case <-timer.C:
			expiry.Stop()
			return wire.LoginWaitResponse{}, nil
		case <-ctx.Done():
			expiry.Stop()
			return wire.LoginWaitResponse{}, ctx.Err()
		}
	}
}

// pruneLogins forgets the expired logins.
func (c *Coordinator) pruneLogins() {
	c.logins.mu.Lock()
	c.logins.prune(c.now())
	c.logins.mu.Unlock()
}

// nodeName makes a node name of a hostname: lowercased, its first label,
// every run of other characters a hyphen; "laptop" when nothing is left.
func nodeName(hostname string) string {
	host, _, _ := strings.Cut(strings.ToLower(hostname), ".")
	var b strings.Builder
	hyphen := false
	for _, r := range host {
		if 'a' <= r && r <= 'z' || '0' <= r && r <= '9' {
			if hyphen && b.Len() > 0 {
				b.WriteByte('-')
			}
			hyphen = false
			b.WriteRune(r)
			continue
		}
		hyphen = true
	}
	name := b.String()
	// Leave room for a "-NNNN" suffix.
	if max := wire.MaxNameLen - 5; len(name) > max {
		name = strings.TrimRight(name[:max], "-")
	}
	if wire.ValidateName(name) != nil {
		return defaultLoginName
	}
	return name
}
