package nodestate

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"

	"github.com/warrennet/warren/overlay/wire"
)

// ErrNoIdentity reports a state directory without an identity: the node
// has not enrolled yet.
var ErrNoIdentity = errors.New("this node is not enrolled yet")

// ErrNoNetMap reports a state directory without a saved netmap: the node
// has never applied one.
var ErrNoNetMap = errors.New("no netmap saved yet")

// Identity is what a node needs to reconnect after a restart.
type Identity struct {
	// PrivateKey is the node's WireGuard private key. It never leaves the
	// node.
	PrivateKey wire.Key `json:"private_key"`
	// Node is the node as the coordinator enrolled it.
	Node wire.Node `json:"node"`
	// Credential authenticates the node's control stream.
	Credential string `json:"credential"`
	// URL and Pin locate and authenticate the coordinator, as in the
	// token the node enrolled with.
	URL string `json:"url"`
	Pin string `json:"pin,omitempty"`
}

// Validate checks that the identity is complete and consistent.
func (id *Identity) Validate() error {
	if id.PrivateKey.IsZero() {
		return errors.New("identity has no private key")
	}
	if !id.Node.PublicKey.IsZero() && id.Node.PublicKey != id.PrivateKey.PublicKey() {
		return errors.New("identity's private key does not match the enrolled public key")
	}
	if id.Credential == "" {
		return errors.New("identity has no credential")
	}
	if err := wire.ValidateCoordinatorURL(id.URL); err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	if id.Pin != "" {
		if b, err := hex.DecodeString(id.Pin); err != nil || len(b) != sha256.Size {
			return errors.New("identity: certificate pin is not a SHA-256 in hex")
		}
	}
	return nil
}

// LoadIdentity reads the node's identity. It returns ErrNoIdentity when
// none was saved.
func (d *Dir) LoadIdentity() (*Identity, error) {
	var id Identity
	if err := d.load(identityFile, &id); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, ErrNoIdentity
		}
		return nil, fmt.Errorf("reading identity: %w", err)
	}
	if err := id.Validate(); err != nil {
		return nil, fmt.Errorf("reading identity from %s: %w", d.path, err)
	}
	return &id, nil
}

// SaveIdentity validates id and replaces the saved identity atomically.
func (d *Dir) SaveIdentity(id *Identity) error {
	if id == nil {
		return errors.New("saving identity: nil identity")
	}
	if err := id.Validate(); err != nil {
		return fmt.Errorf("saving identity: %w", err)
	}
	return d.save(identityFile, id)
}

// LoadNetMap reads the last saved netmap. It returns ErrNoNetMap when none
// was saved.
func (d *Dir) LoadNetMap() (*wire.NetMap, error) {
	var nm wire.NetMap
	if err := d.load(netMapFile, &nm); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, ErrNoNetMap
		}
		return nil, fmt.Errorf("reading netmap: %w", err)
	}
	return &nm, nil
}

// SaveNetMap replaces the saved netmap atomically.
func (d *Dir) SaveNetMap(nm *wire.NetMap) error {
	if nm == nil {
		return errors.New("saving netmap: nil netmap")
	}
	return d.save(netMapFile, nm)
}

// NewPrivateKey returns a new WireGuard private key: 32 random bytes from
// crypto/rand, clamped as Curve25519 requires.
func NewPrivateKey() (wire.Key, error) {
	var k wire.Key
	if _, err := rand.Read(k[:]); err != nil {
		return wire.Key{}, fmt.Errorf("generating private key: %w", err)
	}
	k[0] &= 248
	k[31] = k[31]&127 | 64
	return k, nil
}
