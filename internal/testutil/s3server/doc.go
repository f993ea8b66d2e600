// Package s3server starts real S3 servers for tests: SeaweedFS (`weed
// mini`) and Versity's versitygw (posix backend), built by
// scripts/install-s3servers. Each listens on 127.0.0.1 only, on free
// ports, and accepts signed requests only (an identity file or root
// credentials). The binaries are found in $STILLPOINT_WEED and
// $STILLPOINT_VERSITYGW, else in the cache the script builds into; when
// one is missing the test is skipped, except in CI (CI=true), where it
// fails.
//
// With STILLPOINT_S3_TEST_ENDPOINT (http[s]://HOST:PORT) and
// STILLPOINT_S3_TEST_ACCESS_KEY / STILLPOINT_S3_TEST_SECRET_KEY set, the
// same tests run against that endpoint instead (kind External).
package s3server
