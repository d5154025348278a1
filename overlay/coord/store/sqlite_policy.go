package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/warrennet/warren/overlay/wire"
)

// AddHost implements Store.
func (s *SQLite) AddHost(ctx context.Context, h wire.Host) (uint64, error) {
	if !h.Address.IsValid() {
		return 0, fmt.Errorf("adding host %s: address %v is invalid", h.Name, h.Address)
	}
	v, err := s.updateVersion(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO hosts (name, address, comment, created_at) VALUES (?, ?, ?, ?)`,
			h.Name, h.Address.String(), h.Comment, formatTime(h.CreatedAt))
		if isUniqueViolation(err) {
			return ErrExists
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("adding host %s: %w", h.Name, err)
	}
	return v, nil
}

// RemoveHost implements Store.
func (s *SQLite) RemoveHost(ctx context.Context, name string) (uint64, error) {
	v, err := s.updateVersion(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM hosts WHERE name = ?`, name)
		return affectedOne(res, err)
	})
	if err != nil {
		return 0, fmt.Errorf("removing host %s: %w", name, err)
	}
	return v, nil
}

// SetPolicy implements Store. The document is kept in meta: its text in
// "policy", the time it was set in "policy_set_at".
func (s *SQLite) SetPolicy(ctx context.Context, text *string, now time.Time) (uint64, error) {
	v, err := s.updateVersion(ctx, func(tx *sql.Tx) error {
		if text == nil {
			_, err := tx.ExecContext(ctx, `DELETE FROM meta WHERE key IN ('policy', 'policy_set_at')`)
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('policy', ?), ('policy_set_at', ?)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, *text, formatTime(now))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("setting access policy: %w", err)
	}
	return v, nil
}

func loadHosts(ctx context.Context, tx *sql.Tx) ([]wire.Host, error) {
	rows, err := tx.QueryContext(ctx, `SELECT name, address, comment, created_at FROM hosts ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("reading hosts: %w", err)
	}
	defer rows.Close()
	var hs []wire.Host
	for rows.Next() {
		var h wire.Host
		var addr, created string
		if err := rows.Scan(&h.Name, &addr, &h.Comment, &created); err != nil {
			return nil, fmt.Errorf("reading hosts: %w", err)
		}
		if h.Address, err = netip.ParseAddr(addr); err != nil {
			return nil, fmt.Errorf("host %s: %w", h.Name, err)
		}
		if h.CreatedAt, err = parseTime(created); err != nil {
			return nil, fmt.Errorf("host %s: %w", h.Name, err)
		}
		hs = append(hs, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading hosts: %w", err)
	}
	return hs, nil
}

func loadPolicy(ctx context.Context, tx *sql.Tx) (*StoredPolicy, error) {
	var text, setAt string
	err := tx.QueryRowContext(ctx, `SELECT
		(SELECT value FROM meta WHERE key = 'policy'),
		(SELECT value FROM meta WHERE key = 'policy_set_at')
		WHERE EXISTS (SELECT 1 FROM meta WHERE key = 'policy')`).Scan(&text, &setAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading access policy: %w", err)
	}
	t, err := parseTime(setAt)
	if err != nil {
		return nil, fmt.Errorf("access policy: %w", err)
	}
	return &StoredPolicy{Text: text, SetAt: t}, nil
}
