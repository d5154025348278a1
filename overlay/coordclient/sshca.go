package coordclient

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/warrennet/warren/overlay/wire"
)

// SSHCert asks the coordinator to sign pub, an SSH public key in
// authorized_keys form ("ssh-ed25519 AAAA… comment"), as a user
// certificate for this node's user, valid for validity (zero: the
// coordinator's default, wire.DefaultSSHCertValidity). The coordinator
// caps the validity rather than refusing a longer one: the response says
// the real one (ValidAfter, ValidBefore).
//
// Only a client node with a user may ask. A *wire.Error with
// CodeNoPrincipals means no ssh rule of the access policy names the user;
// CodeUnauthorized, that the node is not such a client (or was removed);
// CodeInvalid, that the key is not one the coordinator certifies.
func (n *NodeClient) SSHCert(ctx context.Context, pub string, validity time.Duration) (*wire.SSHCertResponse, error) {
	var resp wire.SSHCertResponse
	req := wire.SSHCertRequest{PublicKey: pub, Validity: wire.Duration(validity)}
	if err := n.c.do(ctx, http.MethodPost, wire.PathSSHCert, req, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// SSHCA returns the SSH certificate authority's keys: every key sshd
// should trust (TrustedUserCAKeys), with its state.
func (a *Admin) SSHCA(ctx context.Context) (*wire.SSHCA, error) {
	var resp wire.SSHCA
	if err := a.c.do(ctx, http.MethodGet, wire.PathSSHCA, nil, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// RotateSSHCA adds a new CA key, trusted at once, that starts signing
// after overlap (zero: at once); the current signer then retires. It
// returns the keys after the rotation.
func (a *Admin) RotateSSHCA(ctx context.Context, overlap time.Duration) (*wire.SSHCA, error) {
	var resp wire.SSHCA
	req := wire.SSHCARotateRequest{Overlap: wire.Duration(overlap)}
	if err := a.c.do(ctx, http.MethodPost, wire.PathSSHCARotate, req, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// SSHCertLog lists the certificates issued, newest first: only user's
// when user is not empty, at most limit (zero: the coordinator's
// default).
func (a *Admin) SSHCertLog(ctx context.Context, user string, limit int) ([]wire.SSHCertRecord, error) {
	path := wire.PathSSHCALog
	v := url.Values{}
	if user != "" {
		v.Set("user", user)
	}
	if limit != 0 {
		v.Set("limit", strconv.Itoa(limit))
	}
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	var resp []wire.SSHCertRecord
	if err := a.c.do(ctx, http.MethodGet, path, nil, &resp); err != nil {
		return nil, err
	}
	return resp, nil
}
