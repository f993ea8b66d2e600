package web

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/report"
)

// pageTemplate is one page: the layout with the page's content.
type pageTemplate = template.Template

var pageNames = []string{"jobs", "job", "run", "snapshots", "browse", "error"}

func (s *Server) parsePages() error {
	funcs := template.FuncMap{
		"stamp":    func(t time.Time) string { return stamp(t) },
		"iso":      func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"rel":      func(t time.Time) string { return relative(t, s.now()) },
		"dur":      humanDuration,
		"runDur":   func(r *RunSummary) string { return humanDuration(r.Duration(s.now())) },
		"bytes":    func(n any) string { return bytesOf(n) },
		"ms":       func(v float64) string { return fmt.Sprintf("%.0f ms", v) },
		"secs":     func(v float64) string { return humanDuration(time.Duration(v * float64(time.Second))) },
		"show":     showName,
		"counts":   countList,
		"flagged":  func(c outcome.Counts) int64 { return c.NotWhole() },
		"whole":    func(o outcome.Outcome) bool { return o.Whole() },
		"jobURL":   func(name string) string { return "/jobs/" + pathEscape(name) },
		"runURL":   func(id string) string { return "/runs/" + pathEscape(id) },
		"snapURL":  snapshotURL,
		"joinShow": func(ps []string) string { return joinShown(ps) },
		"short": func(id string) string {
			if len(id) > 8 {
				return id[:8]
			}
			return id
		},
		"nextAttempt": func(ps []PendingRetry) time.Time {
			var next time.Time
			for _, p := range ps {
				if next.IsZero() || p.NextAttempt.Before(next) {
					next = p.NextAttempt
				}
			}
			return next
		},
		"dict": func(kv ...any) (map[string]any, error) {
			if len(kv)%2 != 0 {
				return nil, fmt.Errorf("dict wants key, value pairs")
			}
			m := map[string]any{}
			for i := 0; i < len(kv); i += 2 {
				k, ok := kv[i].(string)
				if !ok {
					return nil, fmt.Errorf("dict key %v is not a string", kv[i])
				}
				m[k] = kv[i+1]
			}
			return m, nil
		},
	}
	s.pages = map[string]*pageTemplate{}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return fmt.Errorf("template %s: %w", name, err)
		}
		s.pages[name] = t
	}
	return nil
}

// page is what every page's template gets.
type page struct {
	Title   string
	Nav     string // the menu entry to mark
	CSRF    string
	Refresh int // seconds; 0: no automatic reload
	Notice  string
	Data    any
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, code int, name string, p page) {
	p.CSRF = s.csrfToken(w, r)
	var b bytes.Buffer
	if err := s.pages[name].Execute(&b, p); err != nil {
		s.logf("web: page %s: %v", name, err)
		http.Error(w, "the page could not be shown: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(b.Bytes())
}

type errorView struct {
	Code    int
	Status  string
	Message string
	Links   []crumb
}

// renderError shows err with a link back (when back is set) and links.
func (s *Server) renderError(w http.ResponseWriter, r *http.Request, err error, back string, links ...crumb) {
	code := statusOf(err)
	if code >= 500 {
		s.logf("web: %s %s: %v", r.Method, r.URL.Path, err)
	}
	if back != "" {
		links = append([]crumb{{Name: "Back", URL: back}}, links...)
	}
	s.render(w, r, code, "error", page{Title: http.StatusText(code), Data: errorView{Code: code, Status: http.StatusText(code), Message: err.Error(), Links: links}})
}

type jobsView struct {
	Jobs []JobStatus
}

func (s *Server) pageJobs(w http.ResponseWriter, r *http.Request) {
	jobs, err := s.src.Jobs(r.Context())
	if err != nil {
		s.renderError(w, r, err, "")
		return
	}
	p := page{Title: "Jobs", Nav: "jobs", Data: jobsView{Jobs: jobs}}
	for _, j := range jobs {
		if j.Running != nil {
			p.Refresh = 10
		}
	}
	s.render(w, r, http.StatusOK, "jobs", p)
}

type jobView struct {
	Job  *JobStatus
	Runs []RunSummary
}

func (s *Server) pageJob(w http.ResponseWriter, r *http.Request) {
	job, err := s.findJob(r, r.PathValue("name"))
	if err != nil {
		s.renderError(w, r, err, "/")
		return
	}
	runs, err := s.src.Runs(r.Context(), job.Name, defaultRuns)
	if err != nil {
		s.renderError(w, r, err, "/")
		return
	}
	p := page{Title: "Job " + job.Name, Nav: "jobs", Data: jobView{Job: job, Runs: runs}}
	if id := r.URL.Query().Get("started"); id != "" {
		p.Notice = "Run " + id + " started."
	}
	if job.Running != nil {
		p.Refresh = 10
	}
	s.render(w, r, http.StatusOK, "job", p)
}

func (s *Server) formRunNow(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !s.checkCSRF(r) {
		s.renderError(w, r, &httpError{code: http.StatusForbidden, err: fmt.Errorf("the form's token does not match: reload the page and press the button again")}, "/jobs/"+pathEscape(name))
		return
	}
	id, err := s.src.RunNow(r.Context(), name)
	if err != nil {
		s.renderError(w, r, fmt.Errorf("job %s: %w", name, err), "/jobs/"+pathEscape(name))
		return
	}
	http.Redirect(w, r, "/jobs/"+pathEscape(name)+"?started="+url.QueryEscape(id), http.StatusSeeOther)
}

type runView struct {
	Run *RunDetail
}

func (s *Server) pageRun(w http.ResponseWriter, r *http.Request) {
	run, err := s.src.Run(r.Context(), r.PathValue("id"))
	if err != nil {
		s.renderError(w, r, err, "/")
		return
	}
	p := page{Title: "Run " + run.ID, Nav: "jobs", Data: runView{Run: run}}
	if run.End.IsZero() {
		p.Refresh = 10
	}
	s.render(w, r, http.StatusOK, "run", p)
}

type snapshotsView struct {
	Snapshots []SnapshotInfo
	Errors    []string
}

func (s *Server) pageSnapshots(w http.ResponseWriter, r *http.Request) {
	l := s.listSnapshots(r.Context())
	s.render(w, r, http.StatusOK, "snapshots", page{Title: "Snapshots", Nav: "snapshots", Data: snapshotsView{Snapshots: l.snaps, Errors: l.errors}})
}

type crumb struct {
	Name string
	URL  string
}

// row is one entry of a browsed directory, with its links.
type row struct {
	Entry
	Shown    string // the name, escaped for reading
	URL      string // browse for a directory, download for a file
	Archive  string // tar download of a directory
	Download bool
}

type browseView struct {
	Snapshot SnapshotInfo
	Path     string // shown
	Crumbs   []crumb
	Rows     []row
	Archive  string
	Zip      string
}

func (s *Server) pageBrowse(w http.ResponseWriter, r *http.Request) {
	ref := r.PathValue("id")
	f, err := s.findSnapshot(r.Context(), ref)
	if err != nil {
		s.renderError(w, r, err, "/snapshots")
		return
	}
	p, n, err := f.lookup(r.Context(), "/"+r.PathValue("path"))
	if err != nil {
		s.renderError(w, r, err, browseURL(ref, "/"))
		return
	}
	id := f.snap.ID.String()
	if n.Type != repo.NodeDir {
		// a file's page is its download
		http.Redirect(w, r, fileURL(id, p), http.StatusSeeOther)
		return
	}
	entries, err := f.list(r.Context(), p, n)
	if err != nil {
		s.renderError(w, r, err, browseURL(id, "/"))
		return
	}
	v := browseView{Snapshot: s.snapshotWithDrill(r, f), Path: showPath(f.rules, p), Crumbs: crumbs(id, p, f.rules),
		Archive: archiveURL(id, p, "tar"), Zip: archiveURL(id, p, "zip")}
	for _, e := range entries {
		rw := row{Entry: e, Shown: showName(e.Name)}
		switch e.Type {
		case "dir":
			rw.URL = browseURL(id, e.Path)
			rw.Archive = archiveURL(id, e.Path, "tar")
		case "file":
			rw.URL = fileURL(id, e.Path)
			rw.Download = true
		}
		v.Rows = append(v.Rows, rw)
	}
	s.render(w, r, http.StatusOK, "browse", page{Title: "Snapshot " + f.snap.ID.Short() + " " + v.Path, Nav: "snapshots", Data: v})
}

// crumbs are the links to each directory on the way to p.
func crumbs(id, p string, rules pathmap.Rules) []crumb {
	out := []crumb{{Name: id[:8], URL: browseURL(id, "/")}}
	if p == "/" {
		return out
	}
	names := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i, name := range names {
		shown := showName(name)
		if i == 0 && rules.IsWindows() {
			shown += ":" // the volume, /C → C:
		}
		out = append(out, crumb{Name: shown, URL: browseURL(id, "/"+strings.Join(names[:i+1], "/"))})
	}
	return out
}

// URLs. Each name is escaped on its own, so any byte a name may hold
// (%, ?, #, spaces, invalid UTF-8) comes back unchanged as a path value.
func pathEscape(s string) string { return url.PathEscape(s) }

func escapePath(p string) string {
	names := strings.Split(strings.TrimPrefix(path.Clean("/"+p), "/"), "/")
	for i, n := range names {
		names[i] = url.PathEscape(n)
	}
	return strings.Join(names, "/")
}

func snapshotURL(id string) string  { return "/snapshots/" + pathEscape(id) + "/browse/" }
func browseURL(id, p string) string { return snapshotURL(id) + escapePath(p) }
func fileURL(id, p string) string   { return "/snapshots/" + pathEscape(id) + "/file/" + escapePath(p) }
func archiveURL(id, p, format string) string {
	return "/snapshots/" + pathEscape(id) + "/archive/" + escapePath(p) + "?format=" + format
}

// showName makes a name readable on one line, as `stillpoint ls` does:
// control characters, backslashes and invalid UTF-8 bytes are escaped
// (\n, \xNN, \\). HTML escaping is the template's.
func showName(name string) string { return report.EscapeName(name, true) }

// showPath is a repository path as its snapshot's user knows it:
// C:\data\x for /C/data/x in a snapshot of Windows paths.
func showPath(rules pathmap.Rules, p string) string {
	if rules.IsWindows() {
		return rules.Display(p)
	}
	return showName(p)
}

func joinShown(ps []string) string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = showName(p)
	}
	return strings.Join(out, ", ")
}

// count is one outcome's number of files, for the badges.
type count struct {
	Outcome string
	N       int64
	Whole   bool
}

// countList is the outcomes with files, in order of increasing trouble.
func countList(c outcome.Counts) []count {
	var out []count
	for _, o := range outcome.All() {
		if c[o] > 0 {
			out = append(out, count{Outcome: o.String(), N: c[o], Whole: o.Whole()})
		}
	}
	return out
}

func bytesOf(n any) string {
	switch v := n.(type) {
	case int64:
		return report.Bytes(v)
	case uint64:
		return report.Bytes(int64(v))
	case int:
		return report.Bytes(int64(v))
	}
	return fmt.Sprint(n)
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// relative says how far t is from now: "5 min ago", "in 2 h".
func relative(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	if d < 0 {
		return "in " + humanDuration(-d)
	}
	if d < 10*time.Second {
		return "just now"
	}
	return humanDuration(d) + " ago"
}

func humanDuration(d time.Duration) string {
	d = max(d, 0) // a clock set back
	switch {
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < time.Minute:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%d min %d s", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h %d min", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}
