//go:build nosqlite

package main

// extraContenders is empty in a build without SQLite (-tags nosqlite),
// which bench/webhookstore.sh uses to measure what SQLite adds to a binary.
func extraContenders() []contender { return nil }
