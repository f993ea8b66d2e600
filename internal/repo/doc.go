// Package repo is stillpoint's repository format: keys, content-defined
// chunks, packs of encrypted blobs, the index that says where each blob is,
// trees of directory entries and snapshot manifests. It knows nothing of
// filesystems, snapshots or outcomes beyond what a tree node records.
//
// The on-disk format is described in docs/format.md; the ordering rules that
// keep a repository consistent after any interruption are:
//
//   - a pack is written (and fsynced) before any index names it;
//   - an index is written before any snapshot that needs its blobs;
//   - files are never overwritten; new state is always a new file.
//
// So a killed backup leaves at worst packs no index names (garbage that
// check reports as unreferenced) and never a snapshot with missing data.
package repo
