package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/warrennet/warren/overlay/atomicfile"
	"github.com/warrennet/warren/overlay/ctl"
	"github.com/warrennet/warren/overlay/wire"
)

// sshCertsFile keeps the certificates the daemon renews, in the state dir.
const sshCertsFile = "ssh-certs.json"

// sshCert is one certificate the daemon keeps renewed: whose it is, the
// key it certifies (its text, so a renewal reads nothing of the user's)
// and the last certificate's facts.
type sshCert struct {
	UID       uint32        `json:"uid"`
	GID       uint32        `json:"gid"`
	KeyPath   string        `json:"key_path"`
	PublicKey string        `json:"public_key"`
	Validity  wire.Duration `json:"validity,omitempty"`

	KeyID       string    `json:"key_id,omitempty"`
	Principals  []string  `json:"principals,omitempty"`
	ValidBefore time.Time `json:"valid_before,omitzero"`
	RenewAt     time.Time `json:"renew_at,omitzero"`
	// Error is why the last renewal failed; empty after a success.
	Error string `json:"error,omitempty"`
}

// certPath is where the certificate goes: the key's path without .pub,
// then -cert.pub, as ssh(1) looks for it.
func (c *sshCert) certPath() string { return strings.TrimSuffix(c.KeyPath, ".pub") + "-cert.pub" }

func (c *sshCert) same(o sshCert) bool { return c.UID == o.UID && c.KeyPath == o.KeyPath }

// renewAt is two thirds into a certificate's life as this machine saw it
// begin, and at least a second after it: a clock far off the
// coordinator's must not make renewals spin.
func renewAt(got, validBefore time.Time) time.Time {
	return got.Add(max(validBefore.Sub(got)*2/3, minRenewal))
}

// minRenewal is the least time between two renewals of one certificate.
const minRenewal = time.Second

// retryAfter is how soon a failed renewal is tried again: a tenth of the
// validity, between a second and a minute.
func retryAfter(validity time.Duration) time.Duration {
	return min(max(validity/10, time.Second), time.Minute)
}

// loadSSHCerts reads the registrations. Call with certMu held.
func (e *Engine) loadSSHCerts() ([]sshCert, error) {
	b, err := os.ReadFile(filepath.Join(e.dir.Path(), sshCertsFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading ssh certificates: %w", err)
	}
	var cs []sshCert
	if err := json.Unmarshal(b, &cs); err != nil {
		return nil, fmt.Errorf("reading ssh certificates: %w", err)
	}
	return cs, nil
}

// saveSSHCerts replaces the registrations. Call with certMu held.
func (e *Engine) saveSSHCerts(cs []sshCert) error {
	b, err := json.MarshalIndent(cs, "", "\t")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(e.dir.Path(), sshCertsFile), append(b, '\n'), 0o600)
}

// updateSSHCert replaces the registration like c (same user and key), or
// adds it.
func (e *Engine) updateSSHCert(c sshCert) error {
	e.certMu.Lock()
	defer e.certMu.Unlock()
	cs, err := e.loadSSHCerts()
	if err != nil {
		return err
	}
	if i := slices.IndexFunc(cs, c.same); i >= 0 {
		cs[i] = c
	} else {
		cs = append(cs, c)
	}
	return e.saveSSHCerts(cs)
}

// forgetSSHCerts drops every registration: `warren logout`.
func (e *Engine) forgetSSHCerts() error {
	e.certMu.Lock()
	defer e.certMu.Unlock()
	err := os.Remove(filepath.Join(e.dir.Path(), sshCertsFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("forgetting ssh certificates: %w", err)
	}
	return nil
}

// SSHCert implements ctl.Backend: a certificate on the caller's key,
// written beside it as theirs, and renewed from now on while the tunnel is
// up.
func (e *Engine) SSHCert(ctx context.Context, caller ctl.Caller, req ctl.SSHCertRequest) (ctl.SSHCertResult, error) {
	if !filepath.IsAbs(req.KeyPath) || filepath.Clean(req.KeyPath) != req.KeyPath || !strings.HasSuffix(req.KeyPath, ".pub") || req.KeyPath == "/.pub" {
		return ctl.SSHCertResult{}, fmt.Errorf("%q is not the absolute path of a public key file ending in .pub", req.KeyPath)
	}
	if _, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(req.PublicKey)); err != nil || len(strings.TrimSpace(string(rest))) > 0 {
		return ctl.SSHCertResult{}, fmt.Errorf("%s does not hold one SSH public key", req.KeyPath)
	}
	c := sshCert{UID: caller.UID, GID: caller.GID, KeyPath: req.KeyPath, PublicKey: strings.TrimSpace(req.PublicKey), Validity: req.Validity}
	if err := e.issue(ctx, &c); err != nil {
		return ctl.SSHCertResult{}, err
	}
	if err := e.updateSSHCert(c); err != nil {
		return ctl.SSHCertResult{}, fmt.Errorf("the certificate is in %s, but it will not be renewed: %w", c.certPath(), err)
	}
	select {
	case e.certKick <- struct{}{}:
	default:
	}
	e.log.Info("ssh certificate issued", "uid", c.UID, "path", c.certPath(), "principals", c.Principals, "valid_before", c.ValidBefore)
	return ctl.SSHCertResult{Path: c.certPath(), KeyID: c.KeyID, Principals: c.Principals, ValidBefore: c.ValidBefore, RenewAt: c.RenewAt}, nil
}

// issue asks the coordinator for a certificate on c's key and writes it
// for c's user, filling in c's facts.
func (e *Engine) issue(ctx context.Context, c *sshCert) error {
	id, err := e.dir.LoadIdentity()
	if err != nil {
		return fmt.Errorf("no ssh certificate: %w", err)
	}
	api, err := e.cfg.NewNodeAPI(id)
	if err != nil {
		return err
	}
	defer api.Close()
	got := time.Now()
	resp, err := api.SSHCert(ctx, c.PublicKey, time.Duration(c.Validity))
	if err != nil {
		return fmt.Errorf("asking the coordinator for a certificate: %w", err)
	}
	if err := writeUserFile(filepath.Dir(c.KeyPath), filepath.Base(c.certPath()), c.UID, c.GID, []byte(strings.TrimSpace(resp.Certificate)+"\n")); err != nil {
		return err
	}
	c.KeyID, c.Principals, c.ValidBefore, c.Error = resp.KeyID, resp.Principals, resp.ValidBefore, ""
	c.RenewAt = renewAt(got, resp.ValidBefore)
	return nil
}

// renewSSHCerts renews each certificate when it is due, for as long as ctx
// lasts (the session: the node is enrolled and the tunnel up), and closes
// s.renewed when it returns. A failure is logged, kept for status and
// tried again a little later.
func (e *Engine) renewSSHCerts(ctx context.Context, s *session) {
	defer close(s.renewed)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		next := e.renewDue(ctx)
		if !next.IsZero() {
			t.Reset(time.Until(next))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-e.certKick:
		}
	}
}

// renewDue renews the certificates that are due and returns when the next
// one is (zero: none is registered).
func (e *Engine) renewDue(ctx context.Context) time.Time {
	e.certMu.Lock()
	cs, err := e.loadSSHCerts()
	e.certMu.Unlock()
	if err != nil {
		e.log.Warn("renewing ssh certificates", "err", err)
		return time.Now().Add(time.Minute)
	}
	var next time.Time
	for _, c := range cs {
		if ctx.Err() != nil {
			return time.Time{}
		}
		if time.Now().Before(c.RenewAt) {
			if next.IsZero() || c.RenewAt.Before(next) {
				next = c.RenewAt
			}
			continue
		}
		if err := e.issue(ctx, &c); err != nil {
			if ctx.Err() != nil {
				return time.Time{}
			}
			validity := time.Duration(c.Validity)
			if validity == 0 {
				validity = wire.DefaultSSHCertValidity
			}
			c.Error = err.Error()
			c.RenewAt = time.Now().Add(retryAfter(validity))
			e.log.Warn("renewing an ssh certificate", "uid", c.UID, "path", c.certPath(), "err", err)
		} else {
			e.log.Info("ssh certificate renewed", "uid", c.UID, "path", c.certPath(), "valid_before", c.ValidBefore)
		}
		if err := e.updateSSHCert(c); err != nil {
			e.log.Warn("saving ssh certificates", "err", err)
		}
		if next.IsZero() || c.RenewAt.Before(next) {
			next = c.RenewAt
		}
	}
	return next
}

// sshStatus is the SSH part of status: the principals of the applied
// netmap, and the certificates kept renewed.
func (e *Engine) sshStatus(v *view) ctl.SSHStatus {
	var st ctl.SSHStatus
	if v != nil {
		st.As = slices.Clone(v.access.SSHAs)
	}
	e.certMu.Lock()
	cs, err := e.loadSSHCerts()
	e.certMu.Unlock()
	if err != nil {
		e.log.Warn("reading ssh certificates", "err", err)
	}
	for _, c := range cs {
		name := strconv.FormatUint(uint64(c.UID), 10)
		if u, err := user.LookupId(name); err == nil {
			name = u.Username
		}
		st.Certs = append(st.Certs, ctl.SSHCertStatus{User: name, UID: c.UID, Path: c.certPath(), Principals: c.Principals, ValidBefore: c.ValidBefore, RenewAt: c.RenewAt, Error: c.Error})
	}
	return st
}
