// Package copier copies snapshots from one repository to another: the
// trees and data blobs the target lacks are read from the source,
// decrypted and verified there, and stored in the target as a backup
// stores them (its key, its compression, its packs and index), before the
// snapshot's manifest is written.
//
// Blob ids are keyed with each repository's own key, so a blob has
// another id in the target: every data blob is hashed again with the
// target's key and every tree is rewritten with the new ids. Whether the
// target has a blob is decided by the target's own deduplication
// (repo.Repository.SaveBlob), which counts only blobs that no prune has
// marked (docs/format.md, Prune), under the target's shared lock.
//
// A copy is idempotent: a source snapshot that the target holds already —
// its manifest names the source snapshot (or its first id) as "original"
// or "copied_from", or it has the same tree, time, host and paths — is
// skipped. It is resumable: packs and index files written before an
// interruption are deduplicated against by the next run, and a snapshot's
// manifest is written only after its data and index are durable.
package copier
