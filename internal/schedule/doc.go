// Package schedule decides when jobs run: a job file's schedule: (cron or
// "every D"), jitter, and a Scheduler that starts runs at those times.
//
// # Rules
//
//   - One run per job at a time: a scheduled time that comes while the
//     job's previous run goes on is reported (EventOverlap) and skipped.
//   - A scheduled time that passed without a run — the daemon was down,
//     the machine asleep, the wall clock jumped forward — is reported
//     (EventMissed) and runs once, however many times passed.
//   - After the wall clock goes back, a time already run is not run again.
//   - Timers are monotonic and stop while the machine sleeps, so the
//     scheduler sleeps at most Options.MaxSleep (a minute) on one and
//     compares wall times each time it wakes.
//
// Interval schedules ("every 6h") count from the scheduled time of the
// previous run; a job with no run in the history runs at start-up. Cron
// schedules run at their times in local time (or CRON_TZ=); a job that
// never ran waits for its first time.
package schedule
