package api_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/warrennet/warren/overlay/coord/sso"
	"github.com/warrennet/warren/test/oidctest"
)

// oidcRP is the relying party these tests log in through: go-oidc's ID
// token verifier and x/oauth2's code flow with PKCE, against the real
// provider of test/oidctest. It stands in for *sso.Provider (h-sso), which
// is not on this branch yet: once it is, newRP should become sso.New and
// this file go.
type oidcRP struct {
	cfg      oauth2.Config
	verifier *oidc.IDTokenVerifier
	ctx      context.Context // carries the HTTP client trusting the provider
}

// newRP discovers p and verifies ID tokens for audience (clientID unless
// a test wants a wrong one).
func newRP(t *testing.T, p *oidctest.Provider, clientID, secret, redirect, audience string) *oidcRP {
	t.Helper()
	ctx := oidc.ClientContext(context.Background(), p.HTTPClient())
	prov, err := oidc.NewProvider(ctx, p.Issuer)
	if err != nil {
		t.Fatalf("discovering the provider: %v", err)
	}
	return &oidcRP{
		cfg: oauth2.Config{ClientID: clientID, ClientSecret: secret, RedirectURL: redirect, Endpoint: prov.Endpoint(),
			Scopes: []string{oidc.ScopeOpenID, "email", oidctest.GroupsScope, oidc.ScopeOfflineAccess}},
		verifier: prov.Verifier(&oidc.Config{ClientID: audience}),
		ctx:      ctx,
	}
}

func (r *oidcRP) AuthURL(state, nonce, verifier string) string {
	return r.cfg.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier))
}

type claims struct {
	Email    string   `json:"email"`
	Verified bool     `json:"email_verified"`
	Groups   []string `json:"groups"`
}

func (r *oidcRP) identity(ctx context.Context, tok *oauth2.Token, nonce string) (sso.Identity, error) {
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return sso.Identity{}, fmt.Errorf("%w: no ID token", sso.ErrRefused)
	}
	idt, err := r.verifier.Verify(ctx, raw)
	if err != nil {
		return sso.Identity{}, fmt.Errorf("%w: the ID token: %v", sso.ErrRefused, err)
	}
	if nonce != "" && idt.Nonce != nonce {
		return sso.Identity{}, fmt.Errorf("%w: the ID token's nonce does not match", sso.ErrRefused)
	}
	var c claims
	if err := idt.Claims(&c); err != nil {
		return sso.Identity{}, fmt.Errorf("%w: %v", sso.ErrRefused, err)
	}
	if !c.Verified {
		return sso.Identity{}, fmt.Errorf("%w: the identity provider has not verified the e-mail address %s", sso.ErrRefused, c.Email)
	}
	slices.Sort(c.Groups)
	return sso.Identity{Issuer: idt.Issuer, Subject: idt.Subject, Email: strings.ToLower(c.Email), Groups: slices.Compact(c.Groups),
		RefreshToken: tok.RefreshToken, Expiry: idt.Expiry}, nil
}

func (r *oidcRP) Exchange(ctx context.Context, code, verifier, nonce string) (sso.Identity, error) {
	ctx = context.WithValue(ctx, oauth2.HTTPClient, oauth2.NewClient(r.ctx, nil))
	tok, err := r.cfg.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		return sso.Identity{}, fmt.Errorf("%w: %v", sso.ErrRefused, err)
	}
	return r.identity(r.ctx, tok, nonce)
}

func (r *oidcRP) Refresh(ctx context.Context, refreshToken string) (sso.Identity, error) {
	tok, err := r.cfg.TokenSource(r.ctx, &oauth2.Token{RefreshToken: refreshToken}).Token()
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.ErrorCode == "invalid_grant" {
		return sso.Identity{}, fmt.Errorf("%w: %s", sso.ErrRevoked, re.ErrorCode)
	}
	if err != nil {
		return sso.Identity{}, err
	}
	return r.identity(r.ctx, tok, "")
}
