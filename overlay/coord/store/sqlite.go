package store

import (
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"path/filepath"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/warrennet/warren/overlay/wire"
)

var _ Store = (*SQLite)(nil)

// timeFormat is how times are stored: UTC, nanoseconds, fixed width, so
// the text round-trips exactly and sorts as the times do.
const timeFormat = "2006-01-02T15:04:05.000000000Z"

// busyTimeoutMS is how long a statement waits for a lock another process
// holds (say, a backup or the sqlite3 shell) before it fails.
const busyTimeoutMS = 5000

// overlayPrefix is where node addresses come from. Its base is
// /24-aligned, so an address's offset in it gives its last octet.
var overlayPrefix = netip.MustParsePrefix("100.96.0.0/12")

// SQLite is the Store kept in one SQLite database file.
type SQLite struct {
	// write holds the one connection that writes, so writes queue for it
	// and never race; it begins every transaction with BEGIN IMMEDIATE,
	// so a writer in another process makes us wait rather than fail at
	// commit.
	write *sql.DB
	// read is a pool of query-only connections; in WAL mode they read a
	// committed snapshot without blocking the writer.
	read *sql.DB

	closeOnce sync.Once
	closeErr  error
}

// OpenSQLite opens the database at path, creating it if need be, and
// applies the migrations it lacks. It refuses a database whose schema is
// newer than this binary knows.
func OpenSQLite(ctx context.Context, path string) (*SQLite, error) {
	s, err := openSQLite(ctx, path, migrations)
	if err != nil {
		return nil, fmt.Errorf("opening store %s: %w", path, err)
	}
	return s, nil
}

func openSQLite(ctx context.Context, path string, steps []string) (*SQLite, error) {
	write, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		return nil, err
	}
	write.SetMaxOpenConns(1)
	if err := migrate(ctx, write, steps); err != nil {
		write.Close()
		return nil, err
	}
	read, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		write.Close()
		return nil, err
	}
	read.SetMaxOpenConns(8)
	if err := read.PingContext(ctx); err != nil {
		read.Close()
		write.Close()
		return nil, err
	}
	return &SQLite{write: write, read: read}, nil
}

// dsn is the modernc.org/sqlite data source name for path. The file: URI
// form lets the path hold any character, '?' included.
func dsn(path string, writer bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS))
	q.Add("_pragma", "foreign_keys(1)")
	if writer {
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous(FULL)")
		q.Set("_txlock", "immediate")
	} else {
		q.Add("_pragma", "query_only(1)")
	}
	u := url.URL{Path: filepath.Clean(path)}
	return "file:" + u.EscapedPath() + "?" + q.Encode()
}

// Close implements Store. It is idempotent.
func (s *SQLite) Close() error {
	s.closeOnce.Do(func() {
		if err := errors.Join(s.read.Close(), s.write.Close()); err != nil {
			s.closeErr = fmt.Errorf("closing store: %w", err)
		}
	})
	return s.closeErr
}

// CreateToken implements Store.
func (s *SQLite) CreateToken(ctx context.Context, t Token) error {
	err := s.update(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO tokens
			(id, name, role, hash, reusable, uses, created_at, expires_at, revoked, user)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			t.ID, t.Name, string(t.Role), t.Hash, t.Reusable, t.Uses,
			formatTime(t.CreatedAt), formatTimePtr(t.ExpiresAt), t.Revoked, t.User)
		if isUniqueViolation(err) {
			return ErrExists
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("creating token %s: %w", t.ID, err)
	}
	return nil
}

// RevokeToken implements Store.
func (s *SQLite) RevokeToken(ctx context.Context, id string) error {
	err := s.update(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE tokens SET revoked = 1 WHERE id = ?`, id)
		return affectedOne(res, err)
	})
	if err != nil {
		return fmt.Errorf("revoking token %s: %w", id, err)
	}
	return nil
}

// Enroll implements Store. Beyond the contract, it returns ErrExists if
// p.NodeID, p.PublicKey or p.CredHash already belongs to a node.
func (s *SQLite) Enroll(ctx context.Context, p EnrollParams) (Node, uint64, error) {
	var n Node
	var v uint64
	err := s.update(ctx, func(tx *sql.Tx) error {
		t, err := scanToken(tx.QueryRowContext(ctx, `SELECT `+tokenColumns+`
			FROM tokens WHERE hash = ?`, p.TokenHash))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("token: %w", ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("reading token: %w", err)
		}
		switch t.State(p.Now) {
		case wire.TokenRevoked:
			return ErrTokenRevoked
		case wire.TokenExpired:
			return ErrTokenExpired
		case wire.TokenUsed:
			return ErrTokenUsed
		}

		uses := t.Uses + 1
		name := t.Name
		if t.Reusable {
			name = fmt.Sprintf("%s-%d", t.Name, uses)
		}
		var taken bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM nodes WHERE name = ?)`, name).Scan(&taken); err != nil {
			return fmt.Errorf("checking name %q: %w", name, err)
		}
		if taken {
			return fmt.Errorf("%q: %w", name, ErrNameTaken)
		}
		addr, err := allocAddress(ctx, tx)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE tokens SET uses = ? WHERE id = ?`, uses, t.ID); err != nil {
			return fmt.Errorf("counting token use: %w", err)
		}

		n = Node{
			Node: wire.Node{
				ID:        p.NodeID,
				Name:      name,
				Role:      t.Role,
				PublicKey: p.PublicKey,
				Address:   addr,
				User:      t.User,
			},
			CredHash:   p.CredHash,
			TokenID:    t.ID,
			EnrolledAt: p.Now.UTC().Round(0),
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO nodes
			(id, name, role, public_key, address, cred_hash, token_id, enrolled_at, user)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			n.ID, n.Name, string(n.Role), n.PublicKey.String(), n.Address.String(),
			n.CredHash, n.TokenID, formatTime(n.EnrolledAt), n.User)
		if isUniqueViolation(err) {
			return fmt.Errorf("node with this ID, public key or credential: %w", ErrExists)
		}
		if err != nil {
			return fmt.Errorf("inserting node: %w", err)
		}
		v, err = bumpVersion(ctx, tx)
		return err
	})
	if err != nil {
		return Node{}, 0, fmt.Errorf("enrolling node: %w", err)
	}
	return n, v, nil
}

// DeleteNode implements Store.
func (s *SQLite) DeleteNode(ctx context.Context, id string) (uint64, error) {
	v, err := s.updateVersion(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM nodes WHERE id = ?`, id)
		return affectedOne(res, err)
	})
	if err != nil {
		return 0, fmt.Errorf("deleting node %s: %w", id, err)
	}
	return v, nil
}

// TouchNodes implements Store.
func (s *SQLite) TouchNodes(ctx context.Context, seen map[string]time.Time) error {
	if len(seen) == 0 {
		return nil
	}
	err := s.update(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `UPDATE nodes SET last_seen = ? WHERE id = ?`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for id, t := range seen {
			if _, err := stmt.ExecContext(ctx, formatTime(t), id); err != nil {
				return fmt.Errorf("node %s: %w", id, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recording last-seen times: %w", err)
	}
	return nil
}

// AddRoute implements Store. The prefix is stored masked, as
// netip.Prefix.Masked returns it.
func (s *SQLite) AddRoute(ctx context.Context, r wire.Route) (uint64, error) {
	if !r.Prefix.IsValid() {
		return 0, fmt.Errorf("adding route: prefix %v is invalid", r.Prefix)
	}
	v, err := s.updateVersion(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO routes (prefix, connector, comment, created_at, proxy_protocol, allow_connector_host)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (prefix) DO UPDATE SET
				connector = excluded.connector,
				comment = excluded.comment,
				created_at = excluded.created_at,
				proxy_protocol = excluded.proxy_protocol,
				allow_connector_host = excluded.allow_connector_host`,
			r.Prefix.Masked().String(), r.Connector, r.Comment, formatTime(r.CreatedAt), r.ProxyProtocol, r.AllowConnectorHost)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("adding route %v: %w", r.Prefix, err)
	}
	return v, nil
}

// RemoveRoute implements Store. It masks prefix as AddRoute does.
func (s *SQLite) RemoveRoute(ctx context.Context, prefix netip.Prefix) (uint64, error) {
	v, err := s.updateVersion(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM routes WHERE prefix = ?`, prefix.Masked().String())
		return affectedOne(res, err)
	})
	if err != nil {
		return 0, fmt.Errorf("removing route %v: %w", prefix, err)
	}
	return v, nil
}

// SetSplit implements Store.
func (s *SQLite) SetSplit(ctx context.Context, p wire.SplitPolicy) (uint64, error) {
	v, err := s.updateVersion(ctx, func(tx *sql.Tx) error {
		b, err := json.Marshal(p)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('split', ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, string(b))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("setting split policy: %w", err)
	}
	return v, nil
}

// update runs fn in a write transaction and commits it, or rolls it back
// if fn fails.
func (s *SQLite) update(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	return nil
}

// updateVersion is update for a write that bumps the version; it returns
// the new one.
func (s *SQLite) updateVersion(ctx context.Context, fn func(*sql.Tx) error) (uint64, error) {
	var v uint64
	err := s.update(ctx, func(tx *sql.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		var err error
		v, err = bumpVersion(ctx, tx)
		return err
	})
	return v, err
}

func bumpVersion(ctx context.Context, tx *sql.Tx) (uint64, error) {
	var v int64
	err := tx.QueryRowContext(ctx, `UPDATE meta SET value = value + 1 WHERE key = 'version' RETURNING value`).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("bumping version: %w", err)
	}
	return uint64(v), nil
}

// allocAddress takes the next never-used overlay address.
func allocAddress(ctx context.Context, tx *sql.Tx) (netip.Addr, error) {
	var off int64
	if err := tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'next_address'`).Scan(&off); err != nil {
		return netip.Addr{}, fmt.Errorf("reading address counter: %w", err)
	}
	addr, next, ok := addressAt(off)
	if !ok {
		return netip.Addr{}, ErrAddressSpace
	}
	if _, err := tx.ExecContext(ctx, `UPDATE meta SET value = ? WHERE key = 'next_address'`, next); err != nil {
		return netip.Addr{}, fmt.Errorf("advancing address counter: %w", err)
	}
	return addr, nil
}

// addressAt returns the first usable address of overlayPrefix at offset
// off or after it, skipping last octets .0 and .255, and the offset to try
// next. ok is false when none is left.
func addressAt(off int64) (addr netip.Addr, next int64, ok bool) {
	size := int64(1) << (32 - overlayPrefix.Bits())
	base4 := overlayPrefix.Addr().As4()
	base := binary.BigEndian.Uint32(base4[:])
	for off = max(off, 0); off < size; off++ {
		if last := off & 0xff; last == 0 || last == 0xff {
			continue
		}
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], base+uint32(off))
		return netip.AddrFrom4(a), off + 1, true
	}
	return netip.Addr{}, off, false
}

// affectedOne turns a write that matched no row into ErrNotFound.
func affectedOne(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// isUniqueViolation reports whether err is a PRIMARY KEY or UNIQUE
// constraint failure.
func isUniqueViolation(err error) bool {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	return e.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || e.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

func formatTime(t time.Time) string { return t.UTC().Format(timeFormat) }

func formatTimePtr(t *time.Time) sql.NullString {
	if t == nil {
		return sql.NullString{}
	}
	return sql.NullString{String: formatTime(*t), Valid: true}
}
