// Package store keeps the coordinator's durable state: tokens, nodes, users,
// routes, the split-tunnel policy, named hosts, the split-DNS domains, the
// access-policy document, the state version, and the logs of flows and of
// SSH certificates issued.
// The SQLite implementation applies ordered migrations on open and commits
// every write durably before it returns, so a kill -9 loses nothing that
// was acknowledged.
//
// It knows nothing of HTTP, streams or netmaps; the coordinator (package
// coord) is its only user. It must not import coord, api or any cmd package.
package store

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/warrennet/warren/overlay/wire"
)

// Errors callers branch on. Enroll wraps the token errors; every method
// that names a row returns ErrNotFound when there is none.
var (
	ErrNotFound     = errors.New("not found")
	ErrTokenUsed    = errors.New("token has already been used")
	ErrTokenExpired = errors.New("token has expired")
	ErrTokenRevoked = errors.New("token has been revoked")
	ErrNameTaken    = errors.New("name is taken")
	ErrExists       = errors.New("already exists")
	ErrAddressSpace = errors.New("overlay address space is exhausted")
)

// Token is a stored token: its public description and the hash of its secret.
type Token struct {
	wire.TokenInfo
	// Hash is the lowercase hex SHA-256 of the token's secret.
	Hash string
}

// Node is a stored node.
type Node struct {
	wire.Node
	// CredHash is the lowercase hex SHA-256 of the node's credential.
	CredHash string
	// TokenID is the token that enrolled the node; empty for a node a
	// person enrolled by logging in (single sign-on).
	TokenID    string
	EnrolledAt time.Time
	LastSeen   *time.Time
}

// State is everything the store holds, as Load returns it. Slices are
// sorted: tokens by CreatedAt then ID, nodes by Name, routes by prefix
// (IPv4 before IPv6, then address, then length), hosts by Name.
type State struct {
	// Version is bumped by every write that changes what a node may see
	// (nodes, routes, split policy, hosts, access policy, dns); token writes
	// leave it alone.
	Version uint64
	Tokens  []Token
	Nodes   []Node
	Routes  []wire.Route
	// Split is nil until SetSplit is first called.
	Split *wire.SplitPolicy
	Hosts []wire.Host
	// Policy is the access-policy document; nil when none is set
	// (allow-all).
	Policy *StoredPolicy
	// Users are the people who logged in by single sign-on, by Email.
	Users []User
	// DNS are the split-DNS domains, by Domain.
	DNS []wire.DNSDomain
}

// User is a person who logged in by single sign-on.
type User struct {
	// Email is the key: the provider's verified, lowercased address.
	Email string
	// Issuer and Subject identify the person at the provider.
	Issuer  string
	Subject string
	// Groups are the provider's groups, sorted; nil for none.
	Groups      []string
	LastLogin   time.Time
	ValidatedAt time.Time
	// RefreshToken lets the coordinator ask the provider about the person
	// again; empty when the provider gave none. It is a secret kept in
	// the clear: the coordinator must present it.
	RefreshToken string
	// Disabled says the provider refused the person at a validation;
	// Reason says how.
	Disabled bool
	Reason   string
}

// LoginParams is the node half of a login: the node a person enrolls by
// logging in.
type LoginParams struct {
	// NodeID is the new node's ID, chosen by the caller.
	NodeID    string
	PublicKey wire.Key
	CredHash  string
	// Name is the name wanted; when a node has it, Name-2, Name-3, ... is
	// taken instead, the first that is free.
	Name string
	Now  time.Time
}

// DropNodes says which of a user's nodes UpdateUser removes.
type DropNodes int8

const (
	// KeepNodes removes none.
	KeepNodes DropNodes = iota
	// DropLoginNodes removes the nodes the user enrolled by logging in
	// (no token).
	DropLoginNodes
	// DropAllNodes removes every node carrying the user, token-enrolled
	// ones too.
	DropAllNodes
)

// StoredPolicy is the access-policy document as the admin set it.
type StoredPolicy struct {
	// Text is the document exactly as given, comments and all.
	Text  string
	SetAt time.Time
}

// EnrollParams is the node half of an enrollment.
type EnrollParams struct {
	// TokenHash selects the token to consume.
	TokenHash string
	// NodeID is the new node's ID, chosen by the caller.
	NodeID    string
	PublicKey wire.Key
	CredHash  string
	Now       time.Time
}

// Store is the coordinator's durable state. Every method is safe for
// concurrent use; writes are serialised and each one is a single
// transaction that either commits in full (durably, before the method
// returns) or changes nothing.
type Store interface {
	FlowLog
	SSHCertLog

	// Load reads the whole state.
	Load(ctx context.Context) (*State, error)

	// CreateToken inserts t. ErrExists if its ID or Hash is taken.
	CreateToken(ctx context.Context, t Token) error
	// RevokeToken marks the token revoked (idempotent). ErrNotFound if none.
	RevokeToken(ctx context.Context, id string) error

	// Enroll, in one transaction: finds the token by p.TokenHash
	// (ErrNotFound), refuses it if revoked, expired at p.Now, or single-use
	// and used (ErrTokenRevoked, ErrTokenExpired, ErrTokenUsed), counts one
	// use, names the node (the token's name for a single-use token,
	// NAME-N for the Nth use of a reusable one; ErrNameTaken if a node has
	// that name), allocates the next never-used overlay address in
	// 100.96.0.0/12 skipping .0 and .255 in the last octet
	// (ErrAddressSpace when none is left), inserts the node with the
	// token's role and user, and bumps the version. A failed enrollment consumes
	// nothing. It returns the new node and the new version.
	Enroll(ctx context.Context, p EnrollParams) (Node, uint64, error)
	// DeleteNode removes the node (its routes stay, keyed by name) and
	// bumps the version. ErrNotFound if none.
	DeleteNode(ctx context.Context, id string) (uint64, error)
	// TouchNodes records last-seen times; it does not bump the version.
	// Unknown IDs are ignored.
	TouchNodes(ctx context.Context, seen map[string]time.Time) error

	// AddRoute inserts r, or replaces the route with the same prefix, and
	// bumps the version. Validation is the caller's job.
	AddRoute(ctx context.Context, r wire.Route) (uint64, error)
	// RemoveRoute deletes the route with exactly this prefix and bumps
	// the version. ErrNotFound if none.
	RemoveRoute(ctx context.Context, prefix netip.Prefix) (uint64, error)

	// SetSplit replaces the split-tunnel policy and bumps the version.
	SetSplit(ctx context.Context, p wire.SplitPolicy) (uint64, error)

	// AddHost inserts h and bumps the version. ErrExists if a host has
	// its name. Validation is the caller's job.
	AddHost(ctx context.Context, h wire.Host) (uint64, error)
	// RemoveHost deletes the named host and bumps the version.
	// ErrNotFound if none.
	RemoveHost(ctx context.Context, name string) (uint64, error)

	// SetDNS inserts d, or replaces the entry with its Domain, and bumps
	// the version. Validation is the caller's job.
	SetDNS(ctx context.Context, d wire.DNSDomain) (uint64, error)
	// RemoveDNS deletes the entry for domain and bumps the version.
	// ErrNotFound if none.
	RemoveDNS(ctx context.Context, domain string) (uint64, error)

	// SetPolicy replaces the access-policy document with *text, set at
	// now, or removes it when text is nil (back to allow-all), and bumps
	// the version. Validation is the caller's job.
	SetPolicy(ctx context.Context, text *string, now time.Time) (uint64, error)

	// LoginEnroll, in one transaction: inserts u, or replaces the user
	// with its Email, and enrolls a client node of u.Email without a
	// token (named p.Name, or the first free of p.Name-2, p.Name-3, ...;
	// ErrNameTaken past MaxNameSuffix), with the next overlay address
	// as Enroll does, and bumps the version. ErrExists if the key or
	// credential belongs to a node. It returns the new node and version.
	LoginEnroll(ctx context.Context, u User, p LoginParams) (Node, uint64, error)
	// UpdateUser replaces the stored user with u's Email (ErrNotFound if
	// none), removes the nodes drop selects, and bumps the version, in
	// one transaction.
	UpdateUser(ctx context.Context, u User, drop DropNodes) (uint64, error)
	// DeleteUser removes the user with this email and every node
	// carrying it, and bumps the version, in one transaction. ErrNotFound
	// if there was neither a user nor a node.
	DeleteUser(ctx context.Context, email string) (uint64, error)

	// Close releases the database. Calls in flight may fail.
	Close() error
}
