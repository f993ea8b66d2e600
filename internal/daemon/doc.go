// Package daemon runs stillpoint's jobs on their schedules: `stillpoint
// daemon`.
//
// It composes the parts that each do one thing: job files read from a
// directory (package job), a Scheduler on a replaceable clock (package
// schedule), one run of a job with its retention and retry queue
// (run.RunJob), follow-up runs at the queue's next attempt, the history
// database, notifications, the status pages and metrics (package web),
// and what a service manager expects (package service).
//
// # Rules
//
//   - One run per job at a time: a full run, a follow-up or a manual run.
//     A scheduled time that comes while a full or manual run goes on is
//     reported and skipped (the scheduler's overlap); one that comes
//     during a follow-up waits for it and starts when it ends. A
//     follow-up whose time comes while the job runs waits for the run's
//     end and is planned again from the queue then.
//   - A job's drill (drill.schedule:) is its own scheduler entry, "JOB
//     (drill)": one drill at a time across the jobs, started once no run
//     of its job is in progress, so it drills the newest snapshot.
//   - A follow-up is planned at the queue's earliest next attempt, unless
//     the next full run comes first: it tries every file anyway.
//   - A job file that cannot be read is reported with its file and line;
//     the other jobs run. On a reload, a job whose file became invalid
//     keeps its previous definition until the file is fixed.
//   - The repository of a job is opened for each run and closed after it,
//     so its locks exist only while the job runs.
//   - Notifications never change a run's result; their failures are
//     logged.
//   - Stopping cancels the runs in progress (each releases its snapshot
//     set and runs its on-error hooks), records them as failed and waits
//     for them.
package daemon
