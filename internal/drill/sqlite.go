package drill

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	_ "modernc.org/sqlite" // the driver
)

// verifySQLite opens the restored database read-only and runs
// integrity_check, foreign_key_check and the spec's query.
func verifySQLite(ctx context.Context, e verifyEnv) (string, error) {
	fi, err := os.Stat(e.restored)
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a file (a SQLite database is one file)", e.spec.Path)
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(e.restored), RawQuery: "mode=ro"}
	if !strings.HasPrefix(u.Path, "/") { // Windows: file:///C:/x
		u.Path = "/" + u.Path
	}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return "", err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)

	lines, err := sqliteColumn(ctx, db, "PRAGMA integrity_check")
	if err != nil {
		return "", fmt.Errorf("integrity_check failed: %v", err) // a malformed file stops it
	}
	if len(lines) != 1 || lines[0] != "ok" {
		if len(lines) == 0 {
			return "", errors.New("integrity_check returned nothing")
		}
		return "", failWith(lines, "integrity_check failed: %d problems, first: %s", len(lines), lines[0])
	}
	fk, err := sqliteForeignKeys(ctx, db)
	if err != nil {
		return "", fmt.Errorf("foreign_key_check could not run: %v", err)
	}
	if len(fk) > 0 {
		return "", failWith(fk, "foreign_key_check failed: %d rows break a foreign key, first: %s", len(fk), fk[0])
	}
	msg := "integrity_check ok, foreign_key_check ok"
	if q := e.spec.Query; q != "" {
		found, v, err := firstValue(ctx, db, q)
		if err != nil {
			return "", fmt.Errorf("query %q: %v", q, err)
		}
		note, err := queryVerdict(q, found, v)
		if err != nil {
			return "", err
		}
		msg += "; " + note
	}
	return msg, nil
}

func sqliteColumn(ctx context.Context, db *sql.DB, q string) ([]string, error) {
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

func sqliteForeignKeys(ctx context.Context, db *sql.DB) ([]string, error) {
	rows, err := db.QueryContext(ctx, "PRAGMA foreign_key_check")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var table, parent string
		var rowid sql.NullInt64
		var fkid int64
		if err := rows.Scan(&table, &rowid, &parent, &fkid); err != nil {
			return nil, err
		}
		row := "without rowid"
		if rowid.Valid {
			row = fmt.Sprintf("rowid %d", rowid.Int64)
		}
		out = append(out, fmt.Sprintf("table %s %s refers to a missing row of %s", table, row, parent))
	}
	return out, rows.Err()
}
