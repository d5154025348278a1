package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// migrations are the schema steps in order: applying migrations[i] takes
// the schema from version i to version i+1. Append only: a step that has
// shipped is never edited, reordered or removed.
//
// Times are TEXT in timeFormat (UTC, fixed width, so they also sort);
// booleans are 0 or 1; addresses, keys and prefixes are their canonical
// text. meta holds the state version ("version"), the offset of the next
// overlay address to try ("next_address") and, once set, the split policy
// as JSON ("split").
var migrations = []string{
	// 1: the initial schema.
	`
CREATE TABLE meta (
	key   TEXT NOT NULL PRIMARY KEY,
	value ANY  NOT NULL
) STRICT;
INSERT INTO meta (key, value) VALUES ('version', 0), ('next_address', 1);

CREATE TABLE tokens (
	id         TEXT    NOT NULL PRIMARY KEY,
	name       TEXT    NOT NULL,
	role       TEXT    NOT NULL,
	hash       TEXT    NOT NULL UNIQUE,
	reusable   INTEGER NOT NULL CHECK (reusable IN (0, 1)),
	uses       INTEGER NOT NULL CHECK (uses >= 0),
	created_at TEXT    NOT NULL,
	expires_at TEXT,
	revoked    INTEGER NOT NULL CHECK (revoked IN (0, 1))
) STRICT;

CREATE TABLE nodes (
	id          TEXT NOT NULL PRIMARY KEY,
	name        TEXT NOT NULL UNIQUE,
	role        TEXT NOT NULL,
	public_key  TEXT NOT NULL UNIQUE,
	address     TEXT NOT NULL UNIQUE,
	cred_hash   TEXT NOT NULL UNIQUE,
	token_id    TEXT NOT NULL REFERENCES tokens (id),
	enrolled_at TEXT NOT NULL,
	last_seen   TEXT
) STRICT;
CREATE INDEX nodes_token_id ON nodes (token_id);

CREATE TABLE routes (
	prefix     TEXT NOT NULL PRIMARY KEY,
	connector  TEXT NOT NULL,
	comment    TEXT NOT NULL,
	created_at TEXT NOT NULL
) STRICT;
`,
	// 2: access policy: users on tokens and nodes, named hosts, PROXY v2
	// per route, the flow log. The policy document itself is in meta
	// ("policy", its text as set, and "policy_set_at").
	`
ALTER TABLE tokens ADD COLUMN user TEXT NOT NULL DEFAULT '';
ALTER TABLE nodes ADD COLUMN user TEXT NOT NULL DEFAULT '';
ALTER TABLE routes ADD COLUMN proxy_protocol INTEGER NOT NULL DEFAULT 0 CHECK (proxy_protocol IN (0, 1));

CREATE TABLE hosts (
	name       TEXT NOT NULL PRIMARY KEY,
	address    TEXT NOT NULL,
	comment    TEXT NOT NULL,
	created_at TEXT NOT NULL
) STRICT;

CREATE TABLE flows (
	seq        INTEGER NOT NULL PRIMARY KEY,
	connector  TEXT    NOT NULL,
	id         TEXT    NOT NULL,
	user       TEXT    NOT NULL,
	node       TEXT    NOT NULL,
	src        TEXT    NOT NULL,
	dst        TEXT    NOT NULL,
	proto      TEXT    NOT NULL,
	decision   TEXT    NOT NULL,
	rule       INTEGER NOT NULL,
	reason     TEXT    NOT NULL,
	start      TEXT    NOT NULL,
	end        TEXT    NOT NULL,
	bytes_up   INTEGER NOT NULL,
	bytes_down INTEGER NOT NULL,
	UNIQUE (connector, id)
) STRICT;
CREATE INDEX flows_start ON flows (start);
CREATE INDEX flows_user_start ON flows (user, start);
`,
	// 3: a route may let flows reach the connector host's own addresses.
	`
ALTER TABLE routes ADD COLUMN allow_connector_host INTEGER NOT NULL DEFAULT 0 CHECK (allow_connector_host IN (0, 1));
`,
	// 4: users who log in by single sign-on. A node enrolled by a login
	// has no token, so nodes is rebuilt with token_id nullable (a node
	// has a token or a user).
	`
CREATE TABLE users (
	email         TEXT    NOT NULL PRIMARY KEY,
	issuer        TEXT    NOT NULL,
	subject       TEXT    NOT NULL,
	groups        TEXT    NOT NULL,
	last_login    TEXT    NOT NULL,
	validated_at  TEXT    NOT NULL,
	refresh_token TEXT    NOT NULL,
	disabled      INTEGER NOT NULL CHECK (disabled IN (0, 1)),
	reason        TEXT    NOT NULL
) STRICT;

CREATE TABLE nodes_v4 (
	id          TEXT NOT NULL PRIMARY KEY,
	name        TEXT NOT NULL UNIQUE,
	role        TEXT NOT NULL,
	public_key  TEXT NOT NULL UNIQUE,
	address     TEXT NOT NULL UNIQUE,
	cred_hash   TEXT NOT NULL UNIQUE,
	token_id    TEXT REFERENCES tokens (id),
	enrolled_at TEXT NOT NULL,
	last_seen   TEXT,
	user        TEXT NOT NULL DEFAULT '',
	CHECK (token_id IS NOT NULL OR user != '')
) STRICT;
INSERT INTO nodes_v4 (id, name, role, public_key, address, cred_hash, token_id, enrolled_at, last_seen, user)
	SELECT id, name, role, public_key, address, cred_hash, token_id, enrolled_at, last_seen, user FROM nodes;
DROP TABLE nodes;
ALTER TABLE nodes_v4 RENAME TO nodes;
CREATE INDEX nodes_token_id ON nodes (token_id);
CREATE INDEX nodes_user ON nodes (user);
`,
	// 5: the SSH certificates issued.
	migrationSSHCerts,
	// 6: the split-DNS domains.
	migrationDNS,
}

// errSchemaTooNew refuses a database written by a newer binary: its
// schema may mean things this one would misread or destroy.
var errSchemaTooNew = errors.New("database schema is newer than this binary")

// createSchemaVersion records which migrations have been applied, one row
// per step.
const createSchemaVersion = `
CREATE TABLE IF NOT EXISTS schema_version (
	version    INTEGER NOT NULL PRIMARY KEY,
	applied_at TEXT    NOT NULL
) STRICT`

// migrate brings db's schema up to len(steps), one step per transaction,
// and refuses a schema newer than that. db must begin transactions with
// BEGIN IMMEDIATE, so two processes migrating one file take turns.
func migrate(ctx context.Context, db *sql.DB, steps []string) error {
	if _, err := db.ExecContext(ctx, createSchemaVersion); err != nil {
		return fmt.Errorf("creating schema_version: %w", err)
	}
	for {
		done, err := migrateOne(ctx, db, steps)
		if err != nil || done {
			return err
		}
	}
}

// migrateOne applies the first missing step, or reports done when there
// is none.
func migrateOne(ctx context.Context, db *sql.DB, steps []string) (done bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("beginning migration: %w", err)
	}
	defer tx.Rollback()

	var cur int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&cur); err != nil {
		return false, fmt.Errorf("reading schema version: %w", err)
	}
	switch {
	case cur > len(steps):
		return false, fmt.Errorf("%w: the database is at version %d, this binary knows up to %d; run a newer warren", errSchemaTooNew, cur, len(steps))
	case cur == len(steps):
		return true, nil
	}
	next := cur + 1
	if _, err := tx.ExecContext(ctx, steps[cur]); err != nil {
		return false, fmt.Errorf("applying migration %d: %w", next, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version, applied_at) VALUES (?, ?)`,
		next, formatTime(time.Now())); err != nil {
		return false, fmt.Errorf("recording migration %d: %w", next, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("committing migration %d: %w", next, err)
	}
	return false, nil
}

// migrationUsersReserved holds step 4's place for the users table of the
// login work (a branch of its own); merged, that step replaces it.
const migrationUsersReserved = `SELECT 1;`
