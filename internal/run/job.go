package run

import (
	"fmt"
	"path/filepath"

	"github.com/stillpoint-backup/stillpoint/internal/hold"
	"github.com/stillpoint-backup/stillpoint/internal/job"
	"github.com/stillpoint-backup/stillpoint/internal/livefile"
	"github.com/stillpoint-backup/stillpoint/internal/quiesce"
	"github.com/stillpoint-backup/stillpoint/internal/retention"
	"github.com/stillpoint-backup/stillpoint/internal/snapshot"
)

// FromJob turns a validated job into backup options. stagingDefault is
// used where the job names no staging directory.
func FromJob(j *job.Job, stagingDefault string) (BackupOptions, error) {
	o := BackupOptions{
		Excludes: j.Exclude, Tags: j.Tags, Host: j.Host, Hooks: j.Hooks, Compression: j.Compression,
		Inactivity: j.Quiesce.Inactivity, MaxWait: j.Quiesce.MaxWait,
		FailWithoutQuiet: j.Quiesce.OnTimeout == "fail",
		// an unset hold holds: it only acts on volume snapshots (btrfs)
		Hold: hold.Options{Enabled: j.Quiesce.Hold != "off", Timeout: j.Quiesce.HoldTimeout, Exclude: j.Quiesce.HoldExclude},
	}
	vo, err := j.VSS.Options()
	if err != nil {
		return o, fmt.Errorf("vss: %w", err)
	}
	o.VSS = &vo
	if j.Retention != nil {
		o.Retention = &retention.Options{Policy: j.Retention.Policy, GroupBy: j.Retention.GroupBy}
	}
	for _, s := range j.Sources {
		pol, err := snapshot.ParsePolicy(s.Snapshot)
		if err != nil {
			return o, fmt.Errorf("%s: %w", s.Path, err)
		}
		lf := livefile.DefaultConfig()
		if lf.Strategy, err = livefile.ParseStrategy(s.OpenFiles); err != nil {
			return o, fmt.Errorf("%s: %w", s.Path, err)
		}
		lf.Retries = s.Retries
		lf.StagingDir = firstNonEmpty(s.StagingDir, j.StagingDir, stagingDefault)
		o.Sources = append(o.Sources, Source{Path: s.Path, Snapshot: pol, OpenFiles: lf, Excludes: s.Exclude})
	}
	for _, w := range j.Writers {
		var opts []quiesce.DBOption
		if j.HasDumpHook(w.Kind) {
			opts = append(opts, quiesce.AllowUncoveredFiles())
		}
		var qw quiesce.Writer
		switch w.Kind {
		case "sqlite":
			qw = quiesce.NewSQLite(filepath.Clean(w.Target), w.Timeout)
		case "postgres":
			if w.Checkpoint {
				opts = append(opts, quiesce.ForceCheckpoint())
			}
			qw = quiesce.NewPostgres(w.Target, w.Timeout, opts...)
		case "mysql":
			qw = quiesce.NewMySQL(w.Target, w.Timeout, opts...)
		case "command":
			qw = quiesce.NewCommandWriter(w.Freeze, w.Thaw, w.Timeout)
		default:
			return o, fmt.Errorf("unknown writer kind %q", w.Kind)
		}
		switch w.OnTimeout {
		case "", "snap": // "" in a job built in code: the job file's default
			qw = quiesce.SnapOnTimeout(qw)
		case "fail":
		default:
			return o, fmt.Errorf("writer %s: unknown on-timeout %q", qw.Name(), w.OnTimeout)
		}
		o.Writers = append(o.Writers, qw)
	}
	return o, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
