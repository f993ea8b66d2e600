// Package mysqlserver starts a real MariaDB (or MySQL) server for tests,
// from the binaries of the Debian package (apt-get install mariadb-server),
// listening on 127.0.0.1 and a private socket only, running as the mysql
// user on a data directory the test chooses.
//
// When the binaries are missing the test is skipped, except in CI (env
// CI=true), where it fails.
package mysqlserver
