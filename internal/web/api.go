package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

// defaultRuns and maxRuns bound the runs of a job one request returns.
const (
	defaultRuns = 20
	maxRuns     = 500
)

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// apiError is the body of every API error.
type apiError struct {
	Error  string `json:"error"`
	Status int    `json:"status"`
}

func writeJSONError(w http.ResponseWriter, err error) {
	code := statusOf(err)
	writeJSON(w, code, apiError{Error: err.Error(), Status: code})
}

func limitParam(r *http.Request) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return defaultRuns, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, &httpError{code: http.StatusBadRequest, err: fmt.Errorf("limit %q: want a number from 1 to %d", v, maxRuns)}
	}
	return min(n, maxRuns), nil
}

func (s *Server) apiJobs(w http.ResponseWriter, r *http.Request) {
	jobs, err := s.src.Jobs(r.Context())
	if err != nil {
		writeJSONError(w, err)
		return
	}
	for i := range jobs {
		jobs[i].normalize()
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobs": nonNil(jobs)})
}

// findJob returns the job named name from the Source's list.
func (s *Server) findJob(r *http.Request, name string) (*JobStatus, error) {
	jobs, err := s.src.Jobs(r.Context())
	if err != nil {
		return nil, err
	}
	for i := range jobs {
		if jobs[i].Name == name {
			return &jobs[i], nil
		}
	}
	return nil, &httpError{code: http.StatusNotFound, err: fmt.Errorf("no job %q: %w", name, ErrNotFound)}
}

func (s *Server) apiJob(w http.ResponseWriter, r *http.Request) {
	job, err := s.findJob(r, r.PathValue("name"))
	if err != nil {
		writeJSONError(w, err)
		return
	}
	runs, err := s.src.Runs(r.Context(), job.Name, defaultRuns)
	if err != nil {
		writeJSONError(w, err)
		return
	}
	job.normalize()
	for i := range runs {
		runs[i].normalize()
	}
	writeJSON(w, http.StatusOK, map[string]any{"job": job, "runs": nonNil(runs)})
}

func (s *Server) apiRuns(w http.ResponseWriter, r *http.Request) {
	limit, err := limitParam(r)
	if err != nil {
		writeJSONError(w, err)
		return
	}
	runs, err := s.src.Runs(r.Context(), r.PathValue("name"), limit)
	if err != nil {
		writeJSONError(w, err)
		return
	}
	for i := range runs {
		runs[i].normalize()
	}
	writeJSON(w, http.StatusOK, map[string]any{"runs": nonNil(runs)})
}

func (s *Server) apiRunNow(w http.ResponseWriter, r *http.Request) {
	job := r.PathValue("name")
	id, err := s.src.RunNow(r.Context(), job)
	if err != nil {
		writeJSONError(w, err)
		return
	}
	w.Header().Set("Location", "/api/v1/runs/"+pathEscape(id))
	writeJSON(w, http.StatusAccepted, map[string]any{"job": job, "run_id": id})
}

func (s *Server) apiRun(w http.ResponseWriter, r *http.Request) {
	run, err := s.src.Run(r.Context(), r.PathValue("id"))
	if err != nil {
		writeJSONError(w, err)
		return
	}
	run.normalize()
	writeJSON(w, http.StatusOK, run)
}

func (s *Server) apiSnapshots(w http.ResponseWriter, r *http.Request) {
	l := s.listSnapshots(r.Context())
	if l.snaps == nil {
		l.snaps = []SnapshotInfo{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"snapshots": l.snaps, "errors": nonNil(l.errors)})
}

func (s *Server) apiSnapshot(w http.ResponseWriter, r *http.Request) {
	f, err := s.findSnapshot(r.Context(), r.PathValue("id"))
	if err != nil {
		writeJSONError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, s.snapshotWithDrill(r, f))
}

// snapshotWithDrill is the snapshot's info with its newest drill.
func (s *Server) snapshotWithDrill(r *http.Request, f *found) SnapshotInfo {
	drills, _, err := f.repo.Repo.Drills(r.Context())
	if err != nil {
		return snapshotInfo(f.repo.Name, f.snap, nil)
	}
	return snapshotInfo(f.repo.Name, f.snap, repo.LatestDrills([]*repo.Snapshot{f.snap}, drills)[f.snap.ID])
}

func (s *Server) apiTree(w http.ResponseWriter, r *http.Request) {
	f, err := s.findSnapshot(r.Context(), r.PathValue("id"))
	if err != nil {
		writeJSONError(w, err)
		return
	}
	p, n, err := f.lookup(r.Context(), "/"+r.PathValue("path"))
	if err != nil {
		writeJSONError(w, err)
		return
	}
	out := map[string]any{"snapshot": f.snap.ID.String(), "repository": f.repo.Name, "path": p, "entry": entry(p, n)}
	if n.Type == repo.NodeDir {
		entries, err := f.list(r.Context(), p, n)
		if err != nil {
			writeJSONError(w, err)
			return
		}
		out["entries"] = entries
	}
	writeJSON(w, http.StatusOK, out)
}

// nonNil makes an empty list encode as [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
