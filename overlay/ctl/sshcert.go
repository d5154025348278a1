package ctl

import (
	"time"

	"github.com/warrennet/warren/overlay/wire"
)

// SSHCertRequest asks the daemon for an SSH certificate on the caller's
// public key, written beside it (KEY without .pub, then -cert.pub) and
// owned by the caller, and renewed while the tunnel is up. The daemon
// takes the caller's identity from the socket, never from the request.
type SSHCertRequest struct {
	// PublicKey is the key in authorized_keys form, as the caller read it
	// from KeyPath (the daemon does not read the caller's files).
	PublicKey string `json:"public_key"`
	// KeyPath is the public key file's absolute path; it ends in .pub.
	KeyPath string `json:"key_path"`
	// Validity is how long each certificate should be valid; zero means
	// wire.DefaultSSHCertValidity. The coordinator caps it.
	Validity wire.Duration `json:"validity,omitempty"`
}

// SSHCertResult is the certificate the daemon wrote.
type SSHCertResult struct {
	// Path is where the certificate is: KEY-cert.pub.
	Path        string    `json:"path"`
	KeyID       string    `json:"key_id"`
	Principals  []string  `json:"principals"`
	Serial      uint64    `json:"serial"`
	ValidBefore time.Time `json:"valid_before"`
	// RenewAt is when the daemon asks for the next one (two thirds into
	// the validity), while the tunnel is up.
	RenewAt time.Time `json:"renew_at"`
}

// SSHStatus is this node's SSH access.
type SSHStatus struct {
	// As are the UNIX users the access policy lets this node's user log
	// in as: the principals of its certificates (the netmap's).
	As []string `json:"as,omitempty"`
	// Certs are the certificates the daemon keeps renewed.
	Certs []SSHCertStatus `json:"certs,omitempty"`
}

// SSHCertStatus is one certificate the daemon keeps renewed.
type SSHCertStatus struct {
	// User is the local user it belongs to (UID when the name is unknown).
	User string `json:"user"`
	UID  uint32 `json:"uid"`
	// Path is the certificate file.
	Path        string    `json:"path"`
	Principals  []string  `json:"principals,omitempty"`
	ValidBefore time.Time `json:"valid_before,omitzero"`
	// RenewAt is when the next renewal is due (while the tunnel is up).
	RenewAt time.Time `json:"renew_at,omitzero"`
	// Error is why the last renewal failed, if it did.
	Error string `json:"error,omitempty"`
}
