package coord

import (
	"context"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/warrennet/warren/overlay/coord/sshca"
	"github.com/warrennet/warren/overlay/wire"
)

// DefaultSSHCertMaxValidity caps a certificate's validity unless
// Config.SSHCertMaxValidity says otherwise.
const DefaultSSHCertMaxValidity = 24 * time.Hour

// sshCertBackdate is how long before issue a certificate is valid from,
// so a server whose clock is a little behind takes it.
const sshCertBackdate = 5 * time.Minute

// Bounds of an admin's query of the certificate log.
const (
	DefaultSSHCertLogLimit = 100
	MaxSSHCertLogLimit     = 10000
)

// CanAskSSHCert refuses a node that may not ask for an SSH certificate:
// only a client with a user gets one, since the certificate names the
// user and the principals their ssh rules grant. The API asks before it
// reads the request's body.
func CanAskSSHCert(node wire.Node) error {
	switch {
	case node.Role != wire.RoleClient:
		return errorf(wire.CodeForbidden, "only clients get SSH certificates; %q is a %s", node.Name, node.Role)
	case node.User == "":
		return errorf(wire.CodeForbidden, "node %q has no user, and an SSH certificate is a user's: enroll it with a token that names one (token create --user) or by logging in", node.Name)
	}
	return nil
}

// IssueSSHCert signs req's public key as a user certificate for node's
// user: key ID the user's email, principals those the access policy's ssh
// rules grant the user, valid from 5 minutes ago for req.Validity
// (wire.DefaultSSHCertValidity when zero, capped at the coordinator's
// maximum: a longer request is shortened, not refused; the response says
// the real validity). The certificate is recorded in the store, under the
// serial it carries, before it is returned.
//
// Refusals are *wire.Error: CodeForbidden for a node that is not a client
// with a user, CodeNoPrincipals when no ssh rule names the user,
// CodeInvalid for a key the CA does not certify, CodeUnavailable when the
// coordinator has no CA.
func (c *Coordinator) IssueSSHCert(ctx context.Context, node wire.Node, req wire.SSHCertRequest) (wire.SSHCertResponse, error) {
	if err := CanAskSSHCert(node); err != nil {
		return wire.SSHCertResponse{}, err
	}
	if c.sshca == nil {
		return wire.SSHCertResponse{}, errNoSSHCA()
	}
	pub, err := sshca.ParsePublicKey(req.PublicKey)
	if err != nil {
		return wire.SSHCertResponse{}, invalid(err)
	}
	validity := time.Duration(req.Validity)
	switch {
	case validity < 0:
		return wire.SSHCertResponse{}, errorf(wire.CodeInvalid, "validity %v is negative", validity)
	case validity == 0:
		validity = wire.DefaultSSHCertValidity
	case validity > c.sshMaxValidity:
		validity = c.sshMaxValidity
	}
	s := c.snap.Load()
	principals := s.policy.compiled.SSHPrincipals(node.User)
	if len(principals) == 0 {
		if !s.policy.enforced() {
			return wire.SSHCertResponse{}, errorf(wire.CodeNoPrincipals, "no SSH principals for %s: no access policy is set, and allow-all grants none; set one with an ssh rule naming them (warren policy set)", node.User)
		}
		return wire.SSHCertResponse{}, errorf(wire.CodeNoPrincipals, "no ssh rule of the access policy lets %s log in as anybody: add an ssh rule naming them (warren policy set)", node.User)
	}
	now := c.now().UTC()
	var cert *ssh.Certificate
	rec, err := c.store.IssueSSHCert(ctx, func(serial uint64) (wire.SSHCertRecord, error) {
		signed, caFP, err := c.sshca.Sign(pub, node.User, principals, now.Add(-sshCertBackdate), now.Add(validity), serial)
		if err != nil {
			return wire.SSHCertRecord{}, err
		}
		cert = signed
		return wire.SSHCertRecord{
			User: node.User, Node: node.Name, Principals: principals,
			KeyFingerprint: ssh.FingerprintSHA256(pub), CAFingerprint: caFP,
			IssuedAt:    now,
			ValidAfter:  time.Unix(int64(signed.ValidAfter), 0).UTC(),
			ValidBefore: time.Unix(int64(signed.ValidBefore), 0).UTC(),
		}, nil
	})
	if err != nil {
		return wire.SSHCertResponse{}, fmt.Errorf("issuing an SSH certificate to %s: %w", node.Name, err)
	}
	c.log.Info("ssh certificate issued", "user", rec.User, "node", rec.Node, "serial", rec.Serial,
		"principals", strings.Join(rec.Principals, ","), "valid_before", rec.ValidBefore, "ca", rec.CAFingerprint)
	line := strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(cert)), "\n") + " " + node.User
	return wire.SSHCertResponse{
		Certificate: line,
		Serial:      rec.Serial,
		KeyID:       cert.KeyId,
		Principals:  rec.Principals,
		ValidAfter:  rec.ValidAfter,
		ValidBefore: rec.ValidBefore,
	}, nil
}

func errNoSSHCA() error {
	return errorf(wire.CodeUnavailable, "this coordinator has no SSH certificate authority")
}

// SSHCA returns the CA's keys: every one sshd should trust, with its
// state.
func (c *Coordinator) SSHCA() (wire.SSHCA, error) {
	if c.sshca == nil {
		return wire.SSHCA{}, errNoSSHCA()
	}
	return wire.SSHCA{Keys: c.sshca.Keys(c.now())}, nil
}

// RotateSSHCA adds a CA key, trusted at once, that signs after overlap;
// the key signing now retires once the last certificate it may sign
// expires (overlap plus the maximum validity). It returns the keys after
// the rotation. An overlap out of bounds is CodeInvalid and changes
// nothing.
func (c *Coordinator) RotateSSHCA(ctx context.Context, overlap time.Duration) (wire.SSHCA, error) {
	if c.sshca == nil {
		return wire.SSHCA{}, errNoSSHCA()
	}
	if overlap < 0 || overlap > sshca.MaxOverlap {
		return wire.SSHCA{}, errorf(wire.CodeInvalid, "overlap %v is not between 0 and %v", overlap, sshca.MaxOverlap)
	}
	keys, err := c.sshca.Rotate(overlap, c.sshMaxValidity)
	if err != nil {
		return wire.SSHCA{}, fmt.Errorf("rotating the SSH CA: %w", err)
	}
	for _, k := range keys {
		c.log.Info("ssh ca key", "fingerprint", k.Fingerprint, "state", k.State, "signing_from", k.SigningFrom, "retires_at", k.RetiresAt)
	}
	return wire.SSHCA{Keys: keys}, nil
}

// SSHCertLog returns the certificates issued, newest first: only user's
// when user is not empty, at most limit (zero: DefaultSSHCertLogLimit; at
// most MaxSSHCertLogLimit).
func (c *Coordinator) SSHCertLog(ctx context.Context, user string, limit int) ([]wire.SSHCertRecord, error) {
	if user != "" {
		if err := wire.ValidateUser(user); err != nil {
			return nil, invalid(err)
		}
	}
	switch {
	case limit < 0 || limit > MaxSSHCertLogLimit:
		return nil, errorf(wire.CodeInvalid, "limit %d is not between 1 and %d", limit, MaxSSHCertLogLimit)
	case limit == 0:
		limit = DefaultSSHCertLogLimit
	}
	recs, err := c.store.SSHCerts(ctx, user, limit)
	if err != nil {
		return nil, fmt.Errorf("reading the SSH certificate log: %w", err)
	}
	return recs, nil
}
