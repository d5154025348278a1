// Package sshca is the coordinator's SSH user certificate authority: its
// Ed25519 keys in a private directory (DATA/ssh-ca, 0700; keys 0600) with
// an index (keys.json), rotation with an overlap, and signing user
// certificates. It decides nothing about who may have which principals:
// the coordinator asks it to sign what the access policy grants.
//
// Crash safety: every change is one atomic write of the index, made only
// once every key file it names is durable, so a crash leaves the old CA
// or the new one, never a mix.
//
// It imports only overlay/wire and overlay/atomicfile among Warren
// packages: no coord, api or store.
package sshca

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/warrennet/warren/overlay/atomicfile"
	"github.com/warrennet/warren/overlay/wire"
)

// Dir is the CA's directory under the coordinator's data directory, and
// IndexFile its index in there.
const (
	Dir       = "ssh-ca"
	IndexFile = "keys.json"
)

// MaxOverlap bounds a rotation's overlap: a longer one is almost surely a
// typo, and would leave the old key signing that long.
const MaxOverlap = 30 * 24 * time.Hour

// DefaultExtensions are the permissions every certificate carries, those
// ssh-keygen gives a user certificate by default.
var DefaultExtensions = map[string]string{
	"permit-X11-forwarding":   "",
	"permit-agent-forwarding": "",
	"permit-port-forwarding":  "",
	"permit-pty":              "",
	"permit-user-rc":          "",
}

// CA is the certificate authority. Its methods are safe for concurrent
// use: Sign and Keys read an immutable key ring and never wait for a
// rotation.
type CA struct {
	dir string
	now func() time.Time

	// ring is the key ring in force; replaced whole by Rotate.
	ring atomic.Pointer[keyring]
	// rotateMu serialises rotations: the writes of key files and index
	// and the swap of ring happen under it.
	rotateMu sync.Mutex
}

// keyring is the CA's keys as the index lists them, sorted by SigningFrom
// (then CreatedAt). It is never modified once published.
type keyring struct {
	keys []*caKey
}

// caKey is one key of the ring.
type caKey struct {
	indexKey
	signer ssh.Signer
	line   string // authorized_keys form, with a comment
}

// index is keys.json.
type index struct {
	Keys []indexKey `json:"keys"`
}

// indexKey is one key in keys.json.
type indexKey struct {
	// File is the private key's file name in the CA's directory.
	File        string    `json:"file"`
	Fingerprint string    `json:"fingerprint"`
	CreatedAt   time.Time `json:"created_at"`
	// SigningFrom is when the key starts (started) signing.
	SigningFrom time.Time `json:"signing_from"`
	// RetiresAt is set once a later key will take over signing: the
	// moment the last certificate this key may sign expires. From then
	// on the key is dropped.
	RetiresAt *time.Time `json:"retires_at,omitempty"`
}

// Open opens the CA kept in dir (DATA/ssh-ca), creating the directory
// (0700, through atomicfile.PrivateDir) and a first Ed25519 key on first
// start. now is the clock; nil means time.Now.
func Open(dir string, now func() time.Time) (*CA, error) {
	if now == nil {
		now = time.Now
	}
	if err := atomicfile.PrivateDir(dir); err != nil {
		return nil, fmt.Errorf("ssh ca: %w", err)
	}
	if err := atomicfile.RemoveTemps(dir); err != nil {
		return nil, fmt.Errorf("ssh ca: %w", err)
	}
	c := &CA{dir: dir, now: now}
	b, err := os.ReadFile(filepath.Join(dir, IndexFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		k, err := c.newKey(now().UTC())
		if err != nil {
			return nil, err
		}
		ring := &keyring{keys: []*caKey{k}}
		if err := c.writeIndex(ring); err != nil {
			return nil, err
		}
		c.ring.Store(ring)
		return c, nil
	case err != nil:
		return nil, fmt.Errorf("ssh ca: reading the index: %w", err)
	}
	ring, err := c.loadRing(b)
	if err != nil {
		return nil, fmt.Errorf("ssh ca: %s: %w", filepath.Join(dir, IndexFile), err)
	}
	c.ring.Store(ring)
	return c, nil
}

// loadRing reads the index and every key it names.
func (c *CA) loadRing(b []byte) (*keyring, error) {
	var idx index
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&idx); err != nil {
		return nil, fmt.Errorf("not a key index: %w", err)
	}
	if len(idx.Keys) == 0 {
		return nil, errors.New("lists no key")
	}
	ring := &keyring{}
	for _, ik := range idx.Keys {
		if ik.File != filepath.Base(ik.File) || !strings.HasSuffix(ik.File, ".key") {
			return nil, fmt.Errorf("key file name %q is not a file of the directory", ik.File)
		}
		k, err := c.loadKey(ik)
		if err != nil {
			return nil, err
		}
		ring.keys = append(ring.keys, k)
	}
	ring.sort()
	return ring, nil
}

// loadKey reads one key file and checks it is the key the index says.
func (c *CA) loadKey(ik indexKey) (*caKey, error) {
	path := filepath.Join(c.dir, ik.File)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading key: %w", err)
	}
	raw, err := ssh.ParseRawPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	priv, ok := raw.(*ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s is not an Ed25519 key", path)
	}
	k, err := newCAKey(*priv, ik)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if k.Fingerprint != ik.Fingerprint {
		return nil, fmt.Errorf("%s holds key %s, the index says %s", path, k.Fingerprint, ik.Fingerprint)
	}
	return k, nil
}

// newCAKey wraps priv with the index entry ik, whose Fingerprint it sets.
func newCAKey(priv ed25519.PrivateKey, ik indexKey) (*caKey, error) {
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	pub := signer.PublicKey()
	ik.Fingerprint = ssh.FingerprintSHA256(pub)
	comment := "warren-ssh-ca-" + ik.CreatedAt.UTC().Format("20060102T150405Z")
	line := strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(pub)), "\n") + " " + comment
	return &caKey{indexKey: ik, signer: signer, line: line}, nil
}

// newKey makes a key that signs from signingFrom and writes its file,
// durably, before returning. It is not in the index yet.
func (c *CA) newKey(signingFrom time.Time) (*caKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ssh ca: generating a key: %w", err)
	}
	now := c.now().UTC()
	k, err := newCAKey(priv, indexKey{CreatedAt: now, SigningFrom: signingFrom})
	if err != nil {
		return nil, fmt.Errorf("ssh ca: %w", err)
	}
	sum := sha256.Sum256(k.signer.PublicKey().Marshal())
	k.File = "ca-" + hex.EncodeToString(sum[:8]) + ".key"
	block, err := ssh.MarshalPrivateKey(priv, k.line[strings.LastIndexByte(k.line, ' ')+1:])
	if err != nil {
		return nil, fmt.Errorf("ssh ca: encoding a key: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(c.dir, k.File), pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, fmt.Errorf("ssh ca: %w", err)
	}
	return k, nil
}

// writeIndex replaces keys.json with ring's keys, atomically.
func (c *CA) writeIndex(ring *keyring) error {
	idx := index{Keys: make([]indexKey, len(ring.keys))}
	for i, k := range ring.keys {
		idx.Keys[i] = k.indexKey
	}
	b, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return fmt.Errorf("ssh ca: encoding the index: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(c.dir, IndexFile), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("ssh ca: %w", err)
	}
	return nil
}

func (r *keyring) sort() {
	slices.SortStableFunc(r.keys, func(a, b *caKey) int {
		if c := a.SigningFrom.Compare(b.SigningFrom); c != 0 {
			return c
		}
		return a.CreatedAt.Compare(b.CreatedAt)
	})
}

// signer is the key that signs at now: the one that started signing
// last. The first key signs from its creation, so there is always one
// unless the clock went back past it; then the earliest key signs.
func (r *keyring) signer(now time.Time) *caKey {
	var s *caKey
	for _, k := range r.keys {
		if k.RetiresAt != nil && !now.Before(*k.RetiresAt) {
			continue
		}
		if s == nil || !k.SigningFrom.After(now) {
			s = k
		}
	}
	return s
}

// state is k's state at now, with signing the key that signs; "" for a
// key that is dropped.
func (r *keyring) state(k, signing *caKey, now time.Time) string {
	switch {
	case k.RetiresAt != nil && !now.Before(*k.RetiresAt):
		return ""
	case k == signing:
		return wire.SSHCASigning
	case k.SigningFrom.After(now):
		return wire.SSHCANext
	}
	return wire.SSHCARetiring
}

// Keys returns the keys sshd should trust at now, in the order they sign
// (retiring, signing, next), with their states. Keys past their
// retirement are left out.
func (c *CA) Keys(now time.Time) []wire.SSHCAKey {
	r := c.ring.Load()
	s := r.signer(now)
	out := []wire.SSHCAKey{}
	for _, k := range r.keys {
		st := r.state(k, s, now)
		if st == "" {
			continue
		}
		key := wire.SSHCAKey{PublicKey: k.line, Fingerprint: k.Fingerprint, State: st, CreatedAt: k.CreatedAt}
		if st == wire.SSHCANext || !k.SigningFrom.Equal(k.CreatedAt) {
			from := k.SigningFrom
			key.SigningFrom = &from
		}
		if k.RetiresAt != nil {
			at := *k.RetiresAt
			key.RetiresAt = &at
		}
		out = append(out, key)
	}
	return out
}

// Rotate adds a new key, trusted at once, that signs from now+overlap;
// the key signing now keeps signing until then and is listed (trusted)
// until maxValidity after that, when the last certificate it may sign
// expires. A key still waiting to sign from an earlier rotation (it has
// signed nothing) is replaced; keys past their retirement are dropped. It
// returns the keys after the rotation. On error nothing changed.
func (c *CA) Rotate(overlap, maxValidity time.Duration) ([]wire.SSHCAKey, error) {
	switch {
	case overlap < 0 || overlap > MaxOverlap:
		return nil, fmt.Errorf("overlap %v is not between 0 and %v", overlap, MaxOverlap)
	case maxValidity <= 0:
		return nil, fmt.Errorf("maximum validity %v is not positive", maxValidity)
	}
	c.rotateMu.Lock()
	defer c.rotateMu.Unlock()
	now := c.now().UTC()
	old := c.ring.Load()
	cur := old.signer(now)
	from := now.Add(overlap)
	k, err := c.newKey(from)
	if err != nil {
		return nil, err
	}
	retires := from.Add(maxValidity)
	next := &keyring{}
	var dropped []string
	for _, o := range old.keys {
		st := old.state(o, cur, now)
		if st == "" || st == wire.SSHCANext {
			dropped = append(dropped, o.File)
			continue
		}
		if o == cur { // stops signing at from; retiring keys keep their date
			cp := *o
			cp.RetiresAt = &retires
			o = &cp
		}
		next.keys = append(next.keys, o)
	}
	next.keys = append(next.keys, k)
	next.sort()
	if err := c.writeIndex(next); err != nil {
		os.Remove(filepath.Join(c.dir, k.File))
		return nil, err
	}
	c.ring.Store(next)
	for _, f := range dropped {
		// The index no longer names it; a file left behind is harmless.
		_ = os.Remove(filepath.Join(c.dir, f))
	}
	return c.Keys(now), nil
}
