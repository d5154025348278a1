package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/warrennet/warren/overlay/wire"
)

// MaxNameSuffix bounds the suffixes LoginEnroll tries: NAME-2 up to
// NAME-MaxNameSuffix.
const MaxNameSuffix = 1000

// userColumns are the columns scanUser reads, in its order.
const userColumns = `email, issuer, subject, groups, last_login, validated_at, refresh_token, disabled, reason`

// LoginEnroll implements Store. A person whose e-mail address now belongs
// to another subject at the provider (the address was given to someone
// else) takes over the user; the nodes the previous person enrolled by
// logging in are removed in the same transaction.
func (s *SQLite) LoginEnroll(ctx context.Context, u User, p LoginParams) (Node, uint64, error) {
	var n Node
	var v uint64
	err := s.update(ctx, func(tx *sql.Tx) error {
		old, err := scanUser(tx.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE email = ?`, u.Email))
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return fmt.Errorf("reading user: %w", err)
		case old.Issuer != u.Issuer || old.Subject != u.Subject:
			if err := dropNodes(ctx, tx, u.Email, DropLoginNodes); err != nil {
				return err
			}
		}
		if err := putUser(ctx, tx, u); err != nil {
			return err
		}
		name, err := freeName(ctx, tx, p.Name)
		if err != nil {
			return err
		}
		addr, err := allocAddress(ctx, tx)
		if err != nil {
			return err
		}
		n = Node{
			Node: wire.Node{
				ID:        p.NodeID,
				Name:      name,
				Role:      wire.RoleClient,
				PublicKey: p.PublicKey,
				Address:   addr,
				User:      u.Email,
			},
			CredHash:   p.CredHash,
			EnrolledAt: p.Now.UTC().Round(0),
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO nodes
			(id, name, role, public_key, address, cred_hash, token_id, enrolled_at, user)
			VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?)`,
			n.ID, n.Name, string(n.Role), n.PublicKey.String(), n.Address.String(),
			n.CredHash, formatTime(n.EnrolledAt), n.User)
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
		return Node{}, 0, fmt.Errorf("enrolling a node of %s: %w", u.Email, err)
	}
	return n, v, nil
}

// freeName returns base, or the first of base-2, base-3, ... no node has.
func freeName(ctx context.Context, tx *sql.Tx, base string) (string, error) {
	for i := 1; i <= MaxNameSuffix; i++ {
		name := base
		if i > 1 {
			name = base + "-" + strconv.Itoa(i)
		}
		var taken bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM nodes WHERE name = ?)`, name).Scan(&taken); err != nil {
			return "", fmt.Errorf("checking name %q: %w", name, err)
		}
		if !taken {
			return name, nil
		}
	}
	return "", fmt.Errorf("%q and its %d suffixes: %w", base, MaxNameSuffix, ErrNameTaken)
}

// UpdateUser implements Store.
func (s *SQLite) UpdateUser(ctx context.Context, u User, drop DropNodes) (uint64, error) {
	v, err := s.updateVersion(ctx, func(tx *sql.Tx) error {
		var exists bool
		if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE email = ?)`, u.Email).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return ErrNotFound
		}
		if err := putUser(ctx, tx, u); err != nil {
			return err
		}
		return dropNodes(ctx, tx, u.Email, drop)
	})
	if err != nil {
		return 0, fmt.Errorf("updating user %s: %w", u.Email, err)
	}
	return v, nil
}

// DeleteUser implements Store.
func (s *SQLite) DeleteUser(ctx context.Context, email string) (uint64, error) {
	v, err := s.updateVersion(ctx, func(tx *sql.Tx) error {
		users, err := tx.ExecContext(ctx, `DELETE FROM users WHERE email = ?`, email)
		if err != nil {
			return err
		}
		nodes, err := tx.ExecContext(ctx, `DELETE FROM nodes WHERE user = ?`, email)
		if err != nil {
			return err
		}
		nu, err := users.RowsAffected()
		if err != nil {
			return err
		}
		nn, err := nodes.RowsAffected()
		if err != nil {
			return err
		}
		if nu+nn == 0 {
			return ErrNotFound
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("deleting user %s: %w", email, err)
	}
	return v, nil
}

func putUser(ctx context.Context, tx *sql.Tx, u User) error {
	groups, err := json.Marshal(u.Groups)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO users (`+userColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (email) DO UPDATE SET
			issuer = excluded.issuer,
			subject = excluded.subject,
			groups = excluded.groups,
			last_login = excluded.last_login,
			validated_at = excluded.validated_at,
			refresh_token = excluded.refresh_token,
			disabled = excluded.disabled,
			reason = excluded.reason`,
		u.Email, u.Issuer, u.Subject, string(groups), formatTime(u.LastLogin), formatTime(u.ValidatedAt),
		u.RefreshToken, u.Disabled, u.Reason)
	if err != nil {
		return fmt.Errorf("storing user: %w", err)
	}
	return nil
}

func dropNodes(ctx context.Context, tx *sql.Tx, email string, drop DropNodes) error {
	var err error
	switch drop {
	case KeepNodes:
	case DropLoginNodes:
		_, err = tx.ExecContext(ctx, `DELETE FROM nodes WHERE user = ? AND token_id IS NULL`, email)
	case DropAllNodes:
		_, err = tx.ExecContext(ctx, `DELETE FROM nodes WHERE user = ?`, email)
	default:
		err = fmt.Errorf("unknown DropNodes %d", drop)
	}
	if err != nil {
		return fmt.Errorf("removing nodes of %s: %w", email, err)
	}
	return nil
}

func scanUser(sc scanner) (User, error) {
	var u User
	var groups, last, validated string
	if err := sc.Scan(&u.Email, &u.Issuer, &u.Subject, &groups, &last, &validated, &u.RefreshToken, &u.Disabled, &u.Reason); err != nil {
		return User{}, err
	}
	if err := json.Unmarshal([]byte(groups), &u.Groups); err != nil {
		return User{}, fmt.Errorf("user %s: groups: %w", u.Email, err)
	}
	var err error
	if u.LastLogin, err = parseTime(last); err != nil {
		return User{}, fmt.Errorf("user %s: %w", u.Email, err)
	}
	if u.ValidatedAt, err = parseTime(validated); err != nil {
		return User{}, fmt.Errorf("user %s: %w", u.Email, err)
	}
	return u, nil
}

func loadUsers(ctx context.Context, tx *sql.Tx) ([]User, error) {
	rows, err := tx.QueryContext(ctx, `SELECT `+userColumns+` FROM users ORDER BY email`)
	if err != nil {
		return nil, fmt.Errorf("reading users: %w", err)
	}
	defer rows.Close()
	var us []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("reading users: %w", err)
		}
		us = append(us, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading users: %w", err)
	}
	return us, nil
}
