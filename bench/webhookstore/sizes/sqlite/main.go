// Command sqlite writes one row with modernc.org/sqlite, so that the
// linker keeps what a store on SQLite needs: its size less the baseline's
// is SQLite's cost.
package main

import (
	"database/sql"
	"os"

	_ "modernc.org/sqlite"
)

func main() {
	db, err := sql.Open("sqlite", os.Args[1])
	if err != nil {
		panic(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE t (k TEXT PRIMARY KEY, v BLOB); INSERT INTO t VALUES ('k', 'v')`); err != nil {
		panic(err)
	}
}
