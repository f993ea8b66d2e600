// Package inspect answers questions about what snapshots hold without
// restoring them: how much a restore would write and how much the
// repository stores for them (stats), which snapshots hold a path (find),
// and the node at a path (Lookup).
//
// Everything here reads trees through a Walker, which visits a snapshot in
// path order while it reads the subtrees it will need ahead, in parallel:
// a walk waits on the storage, and one read at a time would leave it idle.
package inspect
