package coord

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrennet/warren/overlay/coord/store"
	"github.com/warrennet/warren/overlay/wire"
)

// TestStoreHoldsOnlyHashes backs the README's claim that the store keeps
// only a hash of each token and node credential: it creates every kind
// of token, enrolls nodes, and reads the SQLite database, its WAL and
// its shared-memory file byte by byte, while the store is open and again
// after it has closed (checkpointing the WAL into the database). No
// secret may appear in any encoding the code could write; each secret's
// hash must, or the test would be reading the wrong files.
func TestStoreHoldsOnlyHashes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "coordinator.db")
	st, err := store.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, err := New(ctx, Config{Store: st, URL: "https://198.51.100.10:8443", Pin: strings.Repeat("0", 64)})
	if err != nil {
		t.Fatal(err)
	}

	var secrets []string // token secrets and node credentials
	var tokens []string  // whole tokens as handed out
	keep := func(resp wire.CreateTokenResponse, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		tok, err := wire.ParseToken(resp.Token)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, tok.Secret)
		tokens = append(tokens, resp.Token)
		return tok.Secret
	}
	keep(c.CreateAdminToken(ctx))
	client := keep(c.CreateToken(ctx, wire.CreateTokenRequest{Role: wire.RoleClient, Name: "laptop", User: "alice@example.com"}))
	connector := keep(c.CreateToken(ctx, wire.CreateTokenRequest{Role: wire.RoleConnector, Name: "office"}))
	fleet := keep(c.CreateToken(ctx, wire.CreateTokenRequest{Role: wire.RoleClient, Name: "fleet", Reusable: true, ExpiresIn: wire.Duration(time.Hour)}))
	keep(c.CreateToken(ctx, wire.CreateTokenRequest{Role: wire.RoleConnector, Name: "unused"}))
	for i, secret := range []string{client, connector, fleet, fleet} {
		resp, err := c.Enroll(ctx, secret, wire.EnrollRequest{PublicKey: wire.Key{byte(i + 1), 31: 0x42}, Hostname: "host"})
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, resp.Credential)
	}
	if _, err := c.AddRoute(ctx, wire.AddRouteRequest{Prefix: "10.1.0.0/16", Connector: "office"}); err != nil {
		t.Fatal(err)
	}

	check := func(when string, wantWAL bool) {
		t.Helper()
		var files [][]byte
		for _, suffix := range []string{"", "-wal", "-shm"} {
			b, err := os.ReadFile(path + suffix)
			if os.IsNotExist(err) && suffix != "" && !wantWAL {
				continue
			}
			if err != nil {
				t.Fatalf("%s: %v", when, err)
			}
			if suffix == "-wal" && wantWAL && len(b) == 0 {
				t.Fatalf("%s: the WAL is empty; the test would not see what is written there", when)
			}
			for _, secret := range secrets {
				for enc, form := range secretForms(secret) {
					if bytes.Contains(b, form) {
						t.Errorf("%s: %s holds a secret (%s)", when, filepath.Base(path+suffix), enc)
					}
				}
			}
			for _, tok := range tokens {
				if bytes.Contains(b, []byte(tok)) {
					t.Errorf("%s: %s holds a whole token", when, filepath.Base(path+suffix))
				}
			}
			files = append(files, b)
		}
		all := bytes.Join(files, nil)
		for _, secret := range secrets {
			if !bytes.Contains(all, []byte(hashSecret(secret))) {
				t.Errorf("%s: no file holds the hash of a secret; is the test reading the store?", when)
			}
		}
	}
	check("store open", true)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	check("store closed", false)
}

// secretForms is a secret (base64url text of random bytes) in every
// encoding the code could plausibly write: the text itself, its bytes,
// and the text and the bytes in hex and base64.
func secretForms(secret string) map[string][]byte {
	forms := map[string][]byte{"raw text": []byte(secret)}
	encode := func(name string, b []byte) {
		forms[name+" hex"] = []byte(hex.EncodeToString(b))
		forms[name+" HEX"] = []byte(strings.ToUpper(hex.EncodeToString(b)))
		forms[name+" base64"] = []byte(base64.StdEncoding.EncodeToString(b))
		forms[name+" base64url"] = []byte(base64.URLEncoding.EncodeToString(b))
		forms[name+" raw base64"] = []byte(base64.RawStdEncoding.EncodeToString(b))
	}
	encode("text", []byte(secret))
	if raw, err := base64.RawURLEncoding.DecodeString(secret); err == nil {
		forms["bytes"] = raw
		encode("bytes", raw)
	}
	return forms
}
