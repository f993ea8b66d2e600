//go:build linux

package drill

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/testutil/mysqlserver"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/pgserver"
)

// A cluster stopped without a shutdown (as a snapshot finds it) starts,
// recovers and passes amcheck and the query; with a page of an index
// zeroed, amcheck names the index.
func TestPostgresVerifier(t *testing.T) {
	data := filepath.Join(t.TempDir(), "pg", "data")
	srv := pgserver.Start(t, data)
	ctx, cancel := context.WithTimeout(bg, 2*time.Minute)
	defer cancel()
	c := srv.Connect(ctx, t, "")
	var indexFile string
	for _, q := range []string{
		"CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL)",
		"INSERT INTO accounts SELECT g, 100 FROM generate_series(1, 20000) g",
		"CHECKPOINT", // so that recovery has no full page of the index to write back
	} {
		if _, err := c.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := c.QueryRow(ctx, "SELECT pg_relation_filepath('accounts_pkey')").Scan(&indexFile); err != nil {
		t.Fatal(err)
	}
	srv.Stop() // immediate: the copy needs crash recovery

	env := verifyEnv{spec: Spec{Kind: "postgres", Path: "/srv/pg/data", Query: "SELECT count(*) FROM accounts"}, restored: data}
	msg, err := verifyPostgres(ctx, env)
	if err != nil {
		t.Fatalf("a whole cluster fails: %v", err)
	}
	if !strings.Contains(msg, "amcheck passed") || !strings.Contains(msg, "returned 20000") {
		t.Errorf("message: %s", msg)
	}
	if _, err := os.Stat(filepath.Join(data, "postmaster.pid")); err == nil {
		t.Error("the verifier left its server running (postmaster.pid)")
	}

	env.spec.Query = "SELECT count(*) FROM accounts WHERE balance < 0"
	if _, err := verifyPostgres(ctx, env); err == nil || !strings.Contains(err.Error(), "returned 0") {
		t.Errorf("an empty query result: %v", err)
	}

	// zero the index's second page (the first is its metapage)
	f, err := os.OpenFile(filepath.Join(data, indexFile), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, 8192), 8192); err != nil {
		t.Fatal(err)
	}
	f.Close()
	env.spec.Query = ""
	_, err = verifyPostgres(ctx, env)
	if err == nil || !strings.Contains(err.Error(), "amcheck found") || !strings.Contains(err.Error(), "accounts_pkey") {
		t.Errorf("a damaged index: %v", err)
	}
}

func TestMySQLVerifier(t *testing.T) {
	data := filepath.Join(t.TempDir(), "mysql")
	srv := mysqlserver.Start(t, data)
	db := srv.DB(t, "")
	for _, q := range []string{
		"CREATE DATABASE shop",
		"CREATE TABLE shop.orders (id INT PRIMARY KEY, total INT NOT NULL, KEY (total)) ENGINE=InnoDB",
		"INSERT INTO shop.orders VALUES (1, 10), (2, 20), (3, 30)",
		"CREATE TABLE shop.notes (id INT PRIMARY KEY, body TEXT) ENGINE=Aria",
		"INSERT INTO shop.notes VALUES (1, 'x')",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	srv.Stop() // killed: the copy needs crash recovery
	ctx, cancel := context.WithTimeout(bg, 2*time.Minute)
	defer cancel()
	env := verifyEnv{spec: Spec{Kind: "mysql", Path: "/srv/mysql"}, restored: data}
	msg, err := verifyMySQL(ctx, env)
	if err != nil {
		t.Fatalf("a whole data directory fails: %v", err)
	}
	if !strings.Contains(msg, "CHECK TABLE passed") {
		t.Errorf("message: %s", msg)
	}
	env.spec.Query, env.spec.Database = "SELECT sum(total) FROM orders", "shop"
	if msg, err := verifyMySQL(ctx, env); err != nil || !strings.Contains(msg, "returned 60") {
		t.Errorf("query: %s, %v", msg, err)
	}
	if _, err := verifyMySQL(ctx, verifyEnv{spec: Spec{Kind: "mysql", Path: "/x"}, restored: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "not a MariaDB/MySQL data directory") {
		t.Errorf("not a data directory: %v", err)
	}
}
