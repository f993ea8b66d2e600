// Package retention decides which snapshots a forget policy keeps, with
// restic 0.19's semantics, so that a policy a user brings from restic keeps
// the same snapshots here.
//
// It is pure logic over [Snapshot] (id, time with its zone, host, paths,
// tags): no repository, no clock of its own (the caller passes "now").
//
// # The rules, as restic 0.19.1 applies them
//
//   - Snapshots are grouped ([GroupBy], by default host and paths) and the
//     policy is applied to each group alone, newest snapshot first.
//   - A snapshot is kept when any rule keeps it; [Kept.Reasons] lists them.
//   - A counting rule (--keep-last, --keep-hourly … --keep-yearly, N or
//     [Unlimited]) keeps the newest snapshot of each period that has
//     snapshots, until N periods are kept. Periods are the hour, day, ISO
//     week, month or year of a snapshot's time in the zone stored with it.
//   - When a counting rule still has counts left at the oldest snapshot of
//     the group, that snapshot is kept too ("oldest daily snapshot"): a
//     short history is kept whole rather than cut.
//   - --keep-within DUR keeps what is newer than DUR before the newest
//     snapshot of the group that is not in the future; the
//     --keep-within-{hourly,…} rules keep one snapshot per period inside
//     that window (and the oldest of the group when it is inside).
//   - --keep-tag keeps snapshots that have every tag of one of the lists.
//   - A group the policy would empty is refused ([ErrKeepsNothing]), and so
//     is an empty policy ([ErrEmptyPolicy]): nothing is removed then.
package retention
