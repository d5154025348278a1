package oidctest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"
)

// store is the library's example storage with what this package adds:
// the clients the test registers, a groups claim, and disabled users.
// Everything else (auth requests, codes, tokens, refresh-token rotation,
// userinfo, keys) is the example storage's.
type store struct {
	*storage.Storage

	mu       sync.Mutex
	clients  map[string]op.Client // by ID
	secrets  map[string]string    // client ID → secret
	groups   map[string][]string  // user ID → groups
	disabled map[string]bool      // user ID → disabled
	scopes   map[string][]string  // access token ID → the scopes it was issued for
}

var _ op.Storage = (*store)(nil)

// users are the example storage's users: ID (the subject) → user.
var users = map[string]*storage.User{
	"alice": user("alice", Alice, true),
	"bob":   user("bob", Bob, true),
	"carol": user("carol", Carol, false),
	"dave":  user("dave", Dave, true),
}

func user(id, email string, verified bool) *storage.User {
	return &storage.User{
		ID:                id,
		Username:          email,
		Password:          Password(email),
		FirstName:         id,
		LastName:          "Test",
		Email:             email,
		EmailVerified:     verified,
		PreferredLanguage: language.English,
	}
}

func newStore() *store {
	return &store{
		// No clients in the example storage's map: they are ours (see
		// GetClientByClientID), so a test can add one while it runs.
		Storage:  storage.NewStorageWithClients(userStore{}, map[string]*storage.Client{}),
		clients:  map[string]op.Client{},
		secrets:  map[string]string{},
		groups:   map[string][]string{"alice": {"eng"}, "bob": {"ops"}},
		disabled: map[string]bool{},
		scopes:   map[string][]string{},
	}
}

// userStore serves the fixed users to the example storage.
type userStore struct{}

func (userStore) GetUserByID(id string) *storage.User { return users[id] }

func (userStore) GetUserByUsername(username string) *storage.User {
	for _, u := range users {
		if u.Username == username {
			return u
		}
	}
	return nil
}

func (userStore) ExampleClientID() string { return storage.ServiceUserID }

func userID(email string) string {
	for id, u := range users {
		if u.Email == email {
			return id
		}
	}
	panic("oidctest: no user " + email)
}

func (s *store) addClient(c Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients[c.ID] = client{
		Client:          storage.WebClient(c.ID, c.Secret, c.RedirectURLs...),
		claimsInIDToken: c.ClaimsInIDToken,
	}
	s.secrets[c.ID] = c.Secret
}

func (s *store) setGroups(email string, groups []string) {
	id := userID(email)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groups[id] = slices.Clone(groups)
}

func (s *store) setDisabled(email string, disabled bool) {
	id := userID(email)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.disabled[id] = disabled
}

func (s *store) isDisabled(userID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.disabled[userID]
}

func (s *store) userGroups(userID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.groups[userID])
}

var errDisabled = errors.New("user is disabled")

// client is the example's web client, also allowed the groups scope.
type client struct {
	op.Client
	claimsInIDToken bool
}

func (c client) IsScopeAllowed(scope string) bool {
	return scope == GroupsScope || c.Client.IsScopeAllowed(scope)
}

func (c client) IDTokenUserinfoClaimsAssertion() bool { return c.claimsInIDToken }

// GetClientByClientID serves the clients the test registered.
func (s *store) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clients[id]
	if !ok {
		return nil, errors.New("client not found")
	}
	return c, nil
}

// AuthorizeClientIDSecret checks a registered client's secret.
func (s *store) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	want, ok := s.secrets[id]
	if !ok {
		return errors.New("client not found")
	}
	if secret != want {
		return errors.New("invalid secret")
	}
	return nil
}

// CheckUsernamePassword refuses a disabled user's password.
func (s *store) CheckUsernamePassword(username, password, id string) error {
	if u := (userStore{}).GetUserByUsername(username); u != nil && s.isDisabled(u.ID) {
		return errDisabled
	}
	return s.Storage.CheckUsernamePassword(username, password, id)
}

// TokenRequestByRefreshToken refuses a disabled user's refresh token: the
// OP answers invalid_grant.
func (s *store) TokenRequestByRefreshToken(ctx context.Context, token string) (op.RefreshTokenRequest, error) {
	req, err := s.Storage.TokenRequestByRefreshToken(ctx, token)
	if err != nil {
		return nil, err
	}
	if s.isDisabled(req.GetSubject()) {
		return nil, errDisabled
	}
	return req, nil
}

// CreateAccessToken and CreateAccessAndRefreshTokens remember each
// access token's scopes, for the groups claim at the userinfo endpoint.
func (s *store) CreateAccessToken(ctx context.Context, req op.TokenRequest) (string, time.Time, error) {
	id, exp, err := s.Storage.CreateAccessToken(ctx, req)
	if err == nil {
		s.rememberScopes(id, req.GetScopes())
	}
	return id, exp, err
}

func (s *store) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	id, refresh, exp, err := s.Storage.CreateAccessAndRefreshTokens(ctx, req, current)
	if err == nil {
		s.rememberScopes(id, req.GetScopes())
	}
	return id, refresh, exp, err
}

func (s *store) rememberScopes(tokenID string, scopes []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scopes[tokenID] = slices.Clone(scopes)
}

// SetUserinfoFromRequest fills the ID token's claims: the example's, and
// groups when the groups scope was granted.
func (s *store) SetUserinfoFromRequest(ctx context.Context, info *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, info, req, scopes); err != nil {
		return err
	}
	s.addGroups(info, req.GetSubject(), scopes)
	return nil
}

// SetUserinfoFromToken answers the userinfo endpoint: the example's
// claims, and groups when the token's scopes have the groups scope; a
// disabled user's token is refused.
func (s *store) SetUserinfoFromToken(ctx context.Context, info *oidc.UserInfo, tokenID, subject, origin string) error {
	if s.isDisabled(subject) {
		return errDisabled
	}
	if err := s.Storage.SetUserinfoFromToken(ctx, info, tokenID, subject, origin); err != nil {
		return err
	}
	s.mu.Lock()
	scopes := s.scopes[tokenID]
	s.mu.Unlock()
	s.addGroups(info, subject, scopes)
	return nil
}

func (s *store) addGroups(info *oidc.UserInfo, userID string, scopes []string) {
	if !slices.Contains(scopes, GroupsScope) {
		return
	}
	groups := s.userGroups(userID)
	if groups == nil {
		groups = []string{}
	}
	info.AppendClaims(GroupsScope, groups)
}
