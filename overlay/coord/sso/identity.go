package sso

import (
	"errors"
	"time"
)

// Identity is a person as the provider vouches for them.
type Identity struct {
	// Issuer and Subject identify the person at the provider for good;
	// Email can change.
	Issuer  string
	Subject string
	// Email is verified (the provider says so), lowercased, and in one
	// of the allowed domains, if any are configured.
	Email string
	// Groups are the groups claim's values, sorted, without duplicates;
	// nil when the provider sends none.
	Groups []string
	// RefreshToken lets the coordinator ask about the person again;
	// empty when the provider gave none.
	RefreshToken string
	// Expiry is the ID token's; zero after a refresh that brought no
	// new ID token.
	Expiry time.Time
}

// ErrRevoked is returned (wrapped) by Refresh when the provider refuses
// the person: disabled, removed, or their grant revoked. Other errors
// (the provider unreachable) say nothing about the person.
var ErrRevoked = errors.New("the identity provider no longer accepts this user")

// ErrRefused is returned (wrapped) by Exchange when the login itself is
// not acceptable: a bad token, an unverified e-mail, a domain not
// allowed. Its text says which, in one line fit to show the person.
var ErrRefused = errors.New("login refused")
