package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/stillpoint-backup/stillpoint/internal/job"
)

// LoadError is a job file the daemon could not use.
type LoadError struct {
	File string
	Err  error
}

func (e *LoadError) Error() string {
	msg := e.Err.Error()
	// job.Load's problems start with the file and line already
	if strings.HasPrefix(msg, e.File) {
		return msg
	}
	return e.File + ": " + msg
}

func (e *LoadError) Unwrap() error { return e.Err }

// JobFiles lists the job files of dir: its *.yaml and *.yml files, by name.
// Hidden files and editors' backups (name~) are left out.
func JobFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || strings.HasPrefix(n, ".") {
			continue
		}
		if ext := filepath.Ext(n); ext == ".yaml" || ext == ".yml" {
			out = append(out, filepath.Join(dir, n))
		}
	}
	sort.Strings(out)
	return out, nil
}

// LoadJobs reads every job file of dir. The jobs that load are returned
// by name; each file that does not (or names a job another file named
// first) is one LoadError, and the others are not affected.
func LoadJobs(dir string) (map[string]*job.Job, []*LoadError, error) {
	files, err := JobFiles(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("jobs directory: %w", err)
	}
	jobs := map[string]*job.Job{}
	var bad []*LoadError
	for _, f := range files {
		j, _, err := job.Load(f)
		if err != nil {
			bad = append(bad, &LoadError{File: f, Err: err})
			continue
		}
		if other, dup := jobs[j.Name]; dup {
			where := f
			if pos, ok := j.Pos("name"); ok {
				where = fmt.Sprintf("%s:%d:%d", f, pos.Line, pos.Column)
			}
			bad = append(bad, &LoadError{File: f, Err: fmt.Errorf("%s: the job name %q is taken by %s: give this job another name", where, j.Name, other.File)})
			continue
		}
		jobs[j.Name] = j
	}
	return jobs, bad, nil
}

// joinLoadErrors is one error of all, nil when there is none.
func joinLoadErrors(bad []*LoadError) error {
	errs := make([]error, len(bad))
	for i, b := range bad {
		errs[i] = b
	}
	return errors.Join(errs...)
}
