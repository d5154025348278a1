package sso

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/warrennet/warren/overlay/wire"
)

// DefaultGroupsClaim is the claim groups are read from unless configured.
const DefaultGroupsClaim = "groups"

// maxGroupLen bounds one group name from the provider.
const maxGroupLen = 256

// Config is the coordinator's registration at the identity provider.
type Config struct {
	// Issuer is the provider's issuer URL (https), exactly as its
	// discovery document names it.
	Issuer string
	// ClientID and ClientSecret are the coordinator's client at the
	// provider; RedirectURL its registered redirect URL
	// (https://COORDINATOR/oidc/callback).
	ClientID     string
	ClientSecret string
	RedirectURL  string
	// GroupsClaim names the claim holding the person's groups (a string
	// or a list of strings); empty means DefaultGroupsClaim.
	GroupsClaim string
	// AllowedDomains, if any, are the only e-mail domains accepted
	// (exact, case-insensitive: example.com does not admit
	// eng.example.com).
	AllowedDomains []string
	// HTTPClient reaches the provider; nil means a client with a 30 s
	// time-out. Tests set one trusting their provider's certificate.
	HTTPClient *http.Client
}

// Validate checks the configuration without reaching the provider.
func (c Config) Validate() error {
	u, err := url.Parse(c.Issuer)
	switch {
	case c.Issuer == "":
		return errors.New("the identity provider's issuer URL is empty")
	case err != nil || u.Scheme != "https" || u.Host == "":
		return fmt.Errorf("the identity provider's issuer %q is not an https URL", c.Issuer)
	case c.ClientID == "":
		return errors.New("the client ID at the identity provider is empty")
	}
	if r, err := url.Parse(c.RedirectURL); err != nil || (r.Scheme != "https" && r.Scheme != "http") || r.Host == "" {
		return fmt.Errorf("the redirect URL %q is not an absolute http(s) URL", c.RedirectURL)
	}
	if strings.ContainsFunc(c.GroupsClaim, func(r rune) bool { return r <= ' ' || wire.UnsafeRune(r) }) {
		return fmt.Errorf("the groups claim %q may not hold spaces or control characters", c.GroupsClaim)
	}
	for _, d := range c.AllowedDomains {
		if d == "" || strings.ContainsFunc(d, func(r rune) bool { return r <= ' ' || r == '@' || r == ',' || wire.UnsafeRune(r) }) {
			return fmt.Errorf("allowed domain %q is not a domain name", d)
		}
	}
	return nil
}

// Provider is the coordinator's relying party at one identity provider.
// It is safe for concurrent use.
type Provider struct {
	issuer      string
	groupsClaim string
	domains     []string // lowercased; empty: any
	client      *http.Client
	oidc        *oidc.Provider
	oauth       oauth2.Config
	verifier    *oidc.IDTokenVerifier
}

// New discovers the provider (its discovery document must name Issuer
// exactly) and returns the relying party. Scopes asked for: openid,
// email, profile, and offline_access and groups when the provider lists
// them in scopes_supported (or lists none).
func New(ctx context.Context, cfg Config) (*Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	op, err := oidc.NewProvider(oidc.ClientContext(ctx, client), cfg.Issuer)
	if err != nil {
		var mismatch *oidc.IssuerMismatchError
		var uerr *url.Error
		switch {
		case errors.As(err, &mismatch):
			return nil, fmt.Errorf("the identity provider at %s calls itself %s: the issuer must match its discovery document exactly", mismatch.Provided, mismatch.Discovered)
		case errors.As(err, &uerr):
			return nil, fmt.Errorf("identity provider %s unreachable: %w", cfg.Issuer, uerr.Err)
		default:
			return nil, fmt.Errorf("discovering the identity provider %s: %s", cfg.Issuer, oneLine(err.Error()))
		}
	}
	var meta struct {
		Scopes []string `json:"scopes_supported"`
	}
	if err := op.Claims(&meta); err != nil {
		return nil, fmt.Errorf("reading the identity provider's discovery document: %w", err)
	}
	scopes := []string{oidc.ScopeOpenID, "email", "profile"}
	for _, s := range []string{oidc.ScopeOfflineAccess, "groups"} {
		if meta.Scopes == nil || slices.Contains(meta.Scopes, s) {
			scopes = append(scopes, s)
		}
	}
	groupsClaim := cfg.GroupsClaim
	if groupsClaim == "" {
		groupsClaim = DefaultGroupsClaim
	}
	domains := make([]string, len(cfg.AllowedDomains))
	for i, d := range cfg.AllowedDomains {
		domains[i] = strings.ToLower(d)
	}
	return &Provider{
		issuer:      cfg.Issuer,
		groupsClaim: groupsClaim,
		domains:     domains,
		client:      client,
		oidc:        op,
		oauth: oauth2.Config{
			ClientID:     cfg.ClientID,
			ClientSecret: cfg.ClientSecret,
			RedirectURL:  cfg.RedirectURL,
			Endpoint:     op.Endpoint(),
			Scopes:       scopes,
		},
		verifier: op.Verifier(&oidc.Config{ClientID: cfg.ClientID}),
	}, nil
}

// AuthURL is the provider's authorization URL for one login: state binds
// the callback to the login, nonce the ID token, verifier (PKCE, sent as
// its S256 challenge) the code. The caller makes all three random and
// keeps them for Exchange.
func (p *Provider) AuthURL(state, nonce, verifier string) string {
	return p.oauth.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier))
}

// Exchange redeems the code the provider sent to the callback and checks
// who logged in: the ID token's signature, issuer, audience (our client
// ID), expiry and nonce; a verified e-mail in an allowed domain; the
// groups claim. A login that is not acceptable is an error wrapping
// ErrRefused whose text, one line, says why; other errors (the provider
// unreachable) do not wrap it.
func (p *Provider) Exchange(ctx context.Context, code, verifier, nonce string) (Identity, error) {
	if nonce == "" || verifier == "" {
		return Identity{}, errors.New("sso: exchange needs the login's nonce and verifier")
	}
	ctx = oidc.ClientContext(ctx, p.client)
	tok, err := p.oauth.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			return Identity{}, refuse("the identity provider refused the login: %s", retrieveReason(re))
		}
		return Identity{}, fmt.Errorf("redeeming the login code at the identity provider: %w", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return Identity{}, refuse("the identity provider sent no ID token")
	}
	idt, err := p.verifier.Verify(ctx, raw)
	if err != nil {
		return Identity{}, refuse("the identity provider's ID token is not valid: %s", oneLine(err.Error()))
	}
	if idt.Nonce != nonce {
		return Identity{}, refuse("the ID token was not issued for this login (nonce mismatch)")
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return Identity{}, refuse("the access token does not match the ID token")
		}
	}
	return p.identity(ctx, idt, tok)
}

// Refresh asks the provider about a person again with their refresh
// token. The provider refusing the token (invalid_grant: disabled,
// removed, grant revoked), or vouching for a person no longer acceptable
// (e-mail unverified, domain not allowed), is an error wrapping
// ErrRevoked; anything else (the provider unreachable or misconfigured,
// a token that does not verify) is not, and says nothing about the
// person. The Identity holds the refresh token to use next time (the
// provider may rotate it); the caller checks that its Issuer and Subject
// are the person's. A new ID token, when the provider sends one, is
// verified (without a nonce); without one, userinfo speaks for the
// person and Expiry is zero.
func (p *Provider) Refresh(ctx context.Context, refreshToken string) (Identity, error) {
	ctx = oidc.ClientContext(ctx, p.client)
	// An expired token with only a refresh token makes the source refresh.
	tok, err := p.oauth.TokenSource(ctx, &oauth2.Token{RefreshToken: refreshToken, Expiry: time.Unix(1, 0)}).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && revoked(re) {
			return Identity{}, fmt.Errorf("%w: %s", ErrRevoked, retrieveReason(re))
		}
		if re != nil {
			return Identity{}, fmt.Errorf("refreshing at the identity provider: %s", retrieveReason(re))
		}
		return Identity{}, fmt.Errorf("refreshing at the identity provider: %w", err)
	}
	var idt *oidc.IDToken
	if raw, _ := tok.Extra("id_token").(string); raw != "" {
		if idt, err = p.verifier.Verify(ctx, raw); err != nil {
			return Identity{}, fmt.Errorf("the identity provider's refreshed ID token is not valid: %s", oneLine(err.Error()))
		}
		if idt.AccessTokenHash != "" {
			if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
				return Identity{}, errors.New("the refreshed access token does not match the ID token")
			}
		}
	}
	id, err := p.identity(ctx, idt, tok)
	var r *refusal
	if errors.As(err, &r) {
		return Identity{}, fmt.Errorf("%w: %s", ErrRevoked, r.reason)
	}
	return id, err
}

// revoked tells a token endpoint's refusal of the person from one of the
// client (a changed secret must not cut everybody off).
func revoked(re *oauth2.RetrieveError) bool {
	switch re.ErrorCode {
	case "invalid_grant":
		return true
	case "":
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		return status == http.StatusBadRequest || status == http.StatusUnauthorized
	}
	return false
}

func retrieveReason(re *oauth2.RetrieveError) string {
	switch {
	case re.ErrorCode != "" && re.ErrorDescription != "":
		return oneLine(re.ErrorCode + " (" + re.ErrorDescription + ")")
	case re.ErrorCode != "":
		return oneLine(re.ErrorCode)
	case re.Response != nil:
		return re.Response.Status
	}
	return "no answer"
}

// claims are the ID token's (or userinfo's) claims we read.
type claims struct {
	Subject       string          `json:"sub"`
	Email         string          `json:"email"`
	EmailVerified json.RawMessage `json:"email_verified"`
}

// identity builds the Identity from a verified ID token (nil after a
// refresh that brought none) and the token response, asking userinfo
// for what the ID token lacks: the e-mail, its verification, the groups.
func (p *Provider) identity(ctx context.Context, idt *oidc.IDToken, tok *oauth2.Token) (Identity, error) {
	var c claims
	all := map[string]json.RawMessage{}
	id := Identity{Issuer: p.issuer, RefreshToken: tok.RefreshToken}
	if idt != nil {
		if err := idt.Claims(&c); err != nil {
			return Identity{}, refuse("the ID token's claims are not readable: %s", oneLine(err.Error()))
		}
		if err := idt.Claims(&all); err != nil {
			return Identity{}, refuse("the ID token's claims are not readable: %s", oneLine(err.Error()))
		}
		id.Issuer, id.Subject, id.Expiry = idt.Issuer, idt.Subject, idt.Expiry
	}
	groups, hasGroups := all[p.groupsClaim]
	if idt == nil || c.Email == "" || c.EmailVerified == nil || !hasGroups {
		if p.oidc.UserInfoEndpoint() != "" {
			ui, err := p.oidc.UserInfo(ctx, oauth2.StaticTokenSource(tok))
			if err != nil {
				var uerr *url.Error
				if errors.As(err, &uerr) {
					return Identity{}, fmt.Errorf("asking the identity provider's userinfo endpoint: %w", err)
				}
				return Identity{}, fmt.Errorf("asking the identity provider's userinfo endpoint: %s", oneLine(err.Error()))
			}
			var uc claims
			uall := map[string]json.RawMessage{}
			if err := ui.Claims(&uc); err != nil {
				return Identity{}, refuse("the userinfo claims are not readable: %s", oneLine(err.Error()))
			}
			if err := ui.Claims(&uall); err != nil {
				return Identity{}, refuse("the userinfo claims are not readable: %s", oneLine(err.Error()))
			}
			switch {
			case uc.Subject == "":
				return Identity{}, refuse("the identity provider's userinfo names no subject")
			case idt != nil && uc.Subject != idt.Subject:
				return Identity{}, refuse("the identity provider's userinfo is about another subject than its ID token")
			}
			id.Subject = uc.Subject
			if c.Email == "" || c.EmailVerified == nil {
				c.Email, c.EmailVerified = uc.Email, uc.EmailVerified
			}
			if !hasGroups {
				groups, hasGroups = uall[p.groupsClaim]
			}
		}
	}
	if id.Subject == "" {
		return Identity{}, refuse("the identity provider names no subject")
	}
	if c.Email == "" {
		return Identity{}, refuse("the identity provider gave no e-mail address")
	}
	email := strings.ToLower(c.Email)
	if err := wire.ValidateUser(email); err != nil {
		return Identity{}, refuse("%s", oneLine(err.Error()))
	}
	verified, err := parseBool(c.EmailVerified)
	if err != nil {
		return Identity{}, refuse("the identity provider's email_verified claim is %s", err)
	}
	if !verified {
		return Identity{}, refuse("the identity provider has not verified %s", email)
	}
	domain := email[strings.LastIndexByte(email, '@')+1:]
	if len(p.domains) > 0 && !slices.Contains(p.domains, domain) {
		return Identity{}, refuse("%s is not an allowed domain", domain)
	}
	id.Email = email
	if hasGroups {
		if id.Groups, err = parseGroups(groups); err != nil {
			return Identity{}, refuse("the identity provider's %s claim: %s", p.groupsClaim, err)
		}
	}
	return id, nil
}

// parseBool reads email_verified: a JSON boolean, or the strings "true"
// and "false" that some providers send. Absent or null is false.
func parseBool(raw json.RawMessage) (bool, error) {
	if raw == nil || string(raw) == "null" {
		return false, nil
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err == nil {
		return b, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		switch strings.ToLower(s) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
	}
	return false, errors.New("neither true nor false")
}

// parseGroups reads a groups claim: a string, a list of strings, or
// null. The result is sorted, without duplicates or empty names; nil
// when there are none. A name that is not one line of printable text
// refuses the whole claim: groups grant access, so a claim read in part
// is not read at all.
func parseGroups(raw json.RawMessage) ([]string, error) {
	var list []string
	var one string
	switch {
	case string(raw) == "null":
	case json.Unmarshal(raw, &one) == nil:
		list = []string{one}
	case json.Unmarshal(raw, &list) == nil:
	default:
		return nil, errors.New("not a string or a list of strings")
	}
	list = slices.DeleteFunc(list, func(g string) bool { return g == "" })
	for _, g := range list {
		if err := wire.ValidateText("a group name", g, maxGroupLen); err != nil {
			return nil, err
		}
	}
	if len(list) == 0 {
		return nil, nil
	}
	slices.Sort(list)
	return slices.Compact(list), nil
}

// refusal is a login refused; its reason is one line fit for the person.
type refusal struct{ reason string }

func (r *refusal) Error() string        { return ErrRefused.Error() + ": " + r.reason }
func (r *refusal) Is(target error) bool { return target == ErrRefused }

func refuse(format string, args ...any) error {
	return &refusal{reason: fmt.Sprintf(format, args...)}
}

// oneLine makes a provider's text one short line: whitespace runs
// (newlines too) become one space, control and format characters are
// dropped, and it is cut at 200 bytes.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	s = strings.Map(func(r rune) rune {
		if wire.UnsafeRune(r) {
			return -1
		}
		return r
	}, s)
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "") + "…"
	}
	return s
}
