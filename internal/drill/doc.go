// Package drill proves that a snapshot restores: a restore drill checks the
// repository, restores the snapshot to a scratch directory (every byte
// verified against its hash) and asks the applications whether their
// restored data is usable, then removes the scratch copy.
//
// Levels, each including the one before:
//   - check: the repository's structure, and the next 1/M of its packs read
//     back and verified (a cursor file keeps the rotation, so M drills read
//     every pack once);
//   - read: the snapshot restored to scratch space and verified;
//   - restore: the verifiers run on the restored copy: SQLite
//     (integrity_check, foreign_key_check, a query), PostgreSQL and
//     MariaDB/MySQL (the restored data directory started as a private
//     server: amcheck or CHECK TABLE, a query), git (fsck --full of every
//     repository) and any command.
//
// Every verifier has a timeout; one that runs past it is killed with every
// process it started (its process group). The result is a
// repo.DrillResult, which the caller stores beside the snapshot.
package drill
