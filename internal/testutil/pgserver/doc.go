// Package pgserver starts a real PostgreSQL server for tests, from the
// binaries of the Debian package (apt-get install postgresql), listening on
// 127.0.0.1 and a private socket directory only.
//
// PostgreSQL refuses to run as root, so the server runs as the "postgres"
// user the package creates (or "nobody"); Start hands it the data
// directory. When the binaries are missing the test is skipped, except in
// CI (env CI=true), where it fails.
package pgserver
