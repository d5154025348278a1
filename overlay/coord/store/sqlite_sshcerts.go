package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/warrennet/warren/overlay/wire"
)

// migrationSSHCerts is step 5: the SSH certificates issued. AUTOINCREMENT
// makes serials grow and never come back, even after the newest row is
// deleted; principals are a JSON array.
const migrationSSHCerts = `
CREATE TABLE ssh_certs (
	serial          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
	user            TEXT    NOT NULL,
	node            TEXT    NOT NULL,
	principals      TEXT    NOT NULL,
	key_fingerprint TEXT    NOT NULL,
	ca_fingerprint  TEXT    NOT NULL,
	issued_at       TEXT    NOT NULL,
	valid_after     TEXT    NOT NULL,
	valid_before    TEXT    NOT NULL
) STRICT;
CREATE INDEX ssh_certs_user ON ssh_certs (user, serial);
`

// SSHCertLog is the log of SSH certificates the coordinator's CA issued.
// Its writes do not bump the state version: no netmap depends on it.
type SSHCertLog interface {
	// IssueSSHCert records a certificate as it is issued, in one
	// transaction: it takes the next serial (greater than every serial
	// ever taken, never reused), calls sign with it, and stores the
	// record sign returns under that serial. If sign fails or the
	// transaction does not commit, nothing is stored, and the caller must
	// not hand out what sign made. sign runs while the store's writes
	// wait: it must be quick and must not call the store.
	IssueSSHCert(ctx context.Context, sign func(serial uint64) (wire.SSHCertRecord, error)) (wire.SSHCertRecord, error)
	// SSHCerts returns the records of user's certificates (every user's
	// when user is empty), newest first, at most limit (no bound when
	// limit is zero or less).
	SSHCerts(ctx context.Context, user string, limit int) ([]wire.SSHCertRecord, error)
}

// signError marks an error of the sign callback, returned as is.
type signError struct{ err error }

func (e signError) Error() string { return e.err.Error() }
func (e signError) Unwrap() error { return e.err }

// IssueSSHCert implements SSHCertLog.
func (s *SQLite) IssueSSHCert(ctx context.Context, sign func(serial uint64) (wire.SSHCertRecord, error)) (wire.SSHCertRecord, error) {
	var rec wire.SSHCertRecord
	err := s.update(ctx, func(tx *sql.Tx) error {
		var serial int64
		err := tx.QueryRowContext(ctx, `INSERT INTO ssh_certs
			(user, node, principals, key_fingerprint, ca_fingerprint, issued_at, valid_after, valid_before)
			VALUES ('', '', '[]', '', '', '', '', '') RETURNING serial`).Scan(&serial)
		if err != nil {
			return fmt.Errorf("taking a serial: %w", err)
		}
		if serial <= 0 || serial == math.MaxInt64 {
			return fmt.Errorf("serial %d is out of range", serial)
		}
		r, err := sign(uint64(serial))
		if err != nil {
			return signError{err}
		}
		r.Serial = uint64(serial)
		principals, err := json.Marshal(r.Principals)
		if err != nil {
			return fmt.Errorf("encoding principals: %w", err)
		}
		_, err = tx.ExecContext(ctx, `UPDATE ssh_certs SET user = ?, node = ?, principals = ?, key_fingerprint = ?,
			ca_fingerprint = ?, issued_at = ?, valid_after = ?, valid_before = ? WHERE serial = ?`,
			r.User, r.Node, string(principals), r.KeyFingerprint, r.CAFingerprint,
			formatTime(r.IssuedAt), formatTime(r.ValidAfter), formatTime(r.ValidBefore), serial)
		if err != nil {
			return fmt.Errorf("storing certificate %d: %w", serial, err)
		}
		rec = r
		return nil
	})
	var se signError
	if errors.As(err, &se) {
		return wire.SSHCertRecord{}, se.err
	}
	if err != nil {
		return wire.SSHCertRecord{}, fmt.Errorf("recording an SSH certificate: %w", err)
	}
	return rec, nil
}

// SSHCerts implements SSHCertLog.
func (s *SQLite) SSHCerts(ctx context.Context, user string, limit int) ([]wire.SSHCertRecord, error) {
	var where []string
	var args []any
	if user != "" {
		where, args = append(where, "user = ?"), append(args, user)
	}
	query := `SELECT serial, user, node, principals, key_fingerprint, ca_fingerprint, issued_at, valid_after, valid_before
		FROM ssh_certs`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY serial DESC"
	if limit > 0 {
		query += " LIMIT ?"
		args = append(args, limit)
	}
	rows, err := s.read.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("querying ssh certificates: %w", err)
	}
	defer rows.Close()
	out := []wire.SSHCertRecord{}
	for rows.Next() {
		r, err := scanSSHCert(rows)
		if err != nil {
			return nil, fmt.Errorf("reading ssh certificates: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading ssh certificates: %w", err)
	}
	return out, nil
}

func scanSSHCert(sc scanner) (wire.SSHCertRecord, error) {
	var r wire.SSHCertRecord
	var serial int64
	var principals, issued, after, before string
	if err := sc.Scan(&serial, &r.User, &r.Node, &principals, &r.KeyFingerprint, &r.CAFingerprint, &issued, &after, &before); err != nil {
		return r, err
	}
	r.Serial = uint64(serial)
	if err := json.Unmarshal([]byte(principals), &r.Principals); err != nil {
		return r, fmt.Errorf("certificate %d: stored principals %q: %w", serial, principals, err)
	}
	var err error
	if r.IssuedAt, err = parseTime(issued); err != nil {
		return r, fmt.Errorf("certificate %d: %w", serial, err)
	}
	if r.ValidAfter, err = parseTime(after); err != nil {
		return r, fmt.Errorf("certificate %d: %w", serial, err)
	}
	if r.ValidBefore, err = parseTime(before); err != nil {
		return r, fmt.Errorf("certificate %d: %w", serial, err)
	}
	return r, nil
}
