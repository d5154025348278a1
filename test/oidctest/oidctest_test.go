package oidctest_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/warrennet/warren/test/oidctest"
	"golang.org/x/oauth2"
)

// TestLoginFlow walks the code flow with golang.org/x/oauth2 as the
// client: discovery advertises the groups scope, the browser logs in,
// the code is exchanged, a wrong password shows the form again.
func TestLoginFlow(t *testing.T) {
	callback := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer callback.Close()
	p := oidctest.Start(t, oidctest.Client{ID: "rp", Secret: "s3cret", RedirectURLs: []string{callback.URL + "/cb"}})
	ctx := t.Context()

	resp, err := p.HTTPClient().Get(p.Issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("discovery: got status %d, want 200", resp.StatusCode)
	}

	cfg := oauth2.Config{
		ClientID: "rp", ClientSecret: "s3cret", RedirectURL: callback.URL + "/cb",
		Endpoint: oauth2.Endpoint{AuthURL: p.Issuer + "/authorize", TokenURL: p.Issuer + "/oauth/token"},
		Scopes:   []string{"openid", "email", oidctest.GroupsScope, "offline_access"},
	}
	verifier := oauth2.GenerateVerifier()
	link := cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier))

	b := p.NewBrowser(callback.Certificate())
	if _, err := b.Login(ctx, link, oidctest.Alice, "wrong"); err == nil || !strings.Contains(err.Error(), "username or password wrong") {
		t.Fatalf("wrong password: got %v, want the form's error", err)
	}
	page, err := b.Login(ctx, link, oidctest.Alice, oidctest.Password(oidctest.Alice))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := page.URL.Path, "/cb"; got != want {
		t.Fatalf("ended at %s, want %s", page.URL, want)
	}
	if got := page.URL.Query().Get("state"); got != "st" {
		t.Fatalf("state: got %q, want st", got)
	}
	tok, err := cfg.Exchange(context.WithValue(ctx, oauth2.HTTPClient, p.HTTPClient()), page.URL.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if tok.Extra("id_token") == nil || tok.RefreshToken == "" {
		t.Fatalf("token response has no ID token or refresh token: %+v", tok)
	}
}

// TestBrowserWithoutForm: a link that leads to no login form (an error
// page) comes back as is; a disabled user's password is refused.
func TestBrowserWithoutForm(t *testing.T) {
	p := oidctest.Start(t, oidctest.Client{ID: "rp", Secret: "s3cret", RedirectURLs: []string{"https://127.0.0.1:1/cb"}})
	b := p.NewBrowser()
	page, err := b.Login(t.Context(), p.Issuer+"/no-such-page", oidctest.Alice, oidctest.Password(oidctest.Alice))
	if err != nil {
		t.Fatal(err)
	}
	if page.StatusCode != http.StatusNotFound {
		t.Errorf("got status %d, want 404", page.StatusCode)
	}

	p.Disable(oidctest.Bob)
	cfg := oauth2.Config{ClientID: "rp", RedirectURL: "https://127.0.0.1:1/cb", Endpoint: oauth2.Endpoint{AuthURL: p.Issuer + "/authorize"}, Scopes: []string{"openid"}}
	link := cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
	if _, err := b.Login(t.Context(), link, oidctest.Bob, oidctest.Password(oidctest.Bob)); err == nil || !strings.Contains(err.Error(), "disabled") {
		t.Fatalf("disabled user: got %v, want the form's error", err)
	}
}
