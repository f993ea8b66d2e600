// Package soak runs the prune soak test of docs/benchmarks.md ("Prune while
// backups run"): several backup clients, each over its own tree that it
// changes between backups, write to one repository while forget --prune runs
// in a loop beside them; at the end every snapshot left must restore exactly
// as its client recorded it, check --read-data must be clean and a last prune
// and prune --now must complete.
//
// It drives the stillpoint binary as a user would, one process per command,
// so every backup and prune takes its own locks and its own view of the
// repository. bench/soak (the 10-minute figures) and the e2e test
// TestSoakShort (the CI version) both call [Run]; they differ only in
// [Config].
//
// A client's manifest of its tree (path → kind, mode, size, SHA-256) is taken
// right before each of its backups; the client changes its tree only between
// its own backups, so the manifest is exactly what the snapshot must hold.
package soak
