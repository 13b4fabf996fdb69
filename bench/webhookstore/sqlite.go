//go:build !nosqlite

package main

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/exogate/exogate/webhooks"
	_ "modernc.org/sqlite"
)

// sqliteStore does the store's acknowledgement work in SQLite: in one
// transaction, look the dedupe key up and insert the message, its indexes
// (state, due) and the route's counter. SQLite has one writer at a time and
// no group commit: each transaction is its own fsync of the WAL.
type sqliteStore struct{ db *sql.DB }

const sqliteSchema = `
CREATE TABLE IF NOT EXISTS messages (
	id TEXT PRIMARY KEY, route TEXT NOT NULL, account TEXT, key TEXT NOT NULL UNIQUE, sid TEXT,
	terminal INTEGER, content_type TEXT, body BLOB, source TEXT, received_at INTEGER,
	state TEXT, attempts INTEGER, next_attempt INTEGER, last_error TEXT, variants INTEGER);
CREATE INDEX IF NOT EXISTS messages_due ON messages(route, next_attempt) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS messages_state ON messages(state, route, received_at);
CREATE TABLE IF NOT EXISTS counts (route TEXT PRIMARY KEY, pending INTEGER, delivered INTEGER, dead INTEGER);`

func openSQLite(path string) (backend, error) {
	dsn := "file:" + path + "?_txlock=immediate&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	// One writer at a time is all SQLite allows; one connection makes the
	// callers queue in database/sql instead of spinning on SQLITE_BUSY.
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(sqliteSchema); err != nil {
		db.Close()
		return nil, err
	}
	return sqliteStore{db}, nil
}

func (s sqliteStore) accept(m webhooks.Message) (out webhooks.Outcome, err error) {
	tx, err := s.db.Begin()
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	var id string
	var orig []byte
	err = tx.QueryRow(`SELECT id, body FROM messages WHERE key = ?`, m.Key).Scan(&id, &orig)
	switch {
	case err == nil && bytes.Equal(orig, m.Body):
		return webhooks.Duplicate, tx.Commit()
	case err == nil:
		_, err = tx.Exec(`UPDATE messages SET variants = variants + 1 WHERE id = ?`, id)
		if err != nil {
			return 0, err
		}
		return webhooks.Variant, tx.Commit()
	case !errors.Is(err, sql.ErrNoRows):
		return 0, err
	}
	at := m.ReceivedAt.UnixNano()
	_, err = tx.Exec(`INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, '', 0)`,
		fmt.Sprintf("msg_%d", time.Now().UnixNano()), m.Route, m.Account, m.Key, m.Sid, m.Terminal,
		m.ContentType, m.Body, string(m.Source), at, at)
	if err != nil {
		return 0, err
	}
	_, err = tx.Exec(`INSERT INTO counts VALUES (?, 1, 0, 0)
		ON CONFLICT(route) DO UPDATE SET pending = pending + 1`, m.Route)
	if err != nil {
		return 0, err
	}
	return webhooks.Accepted, tx.Commit()
}

func (s sqliteStore) close() error { return s.db.Close() }

func extraContenders() []contender {
	return []contender{{name: "SQLite (modernc, WAL, synchronous=FULL)", open: openSQLite}}
}
