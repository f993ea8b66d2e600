package web

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"

	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/restore"
)

// countingWriter tells whether anything reached the response.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// attachment is a Content-Disposition naming the download name; a name
// that is not plain ASCII goes in RFC 2231's filename*.
func attachment(name string) string {
	if v := mime.FormatMediaType("attachment", map[string]string{"filename": name}); v != "" {
		return v
	}
	return "attachment"
}

// downloadFile sends a file of a snapshot. A file not stored whole is
// refused (409) unless ?force=1, as `stillpoint dump` refuses it without
// --force. The content is never shown inline: a stored HTML file must not
// run as a page of this site.
func (s *Server) downloadFile(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	f, err := s.findSnapshot(ctx, r.PathValue("id"))
	if err != nil {
		s.renderError(w, r, err, "/snapshots")
		return
	}
	id := f.snap.ID.String()
	p, n, err := f.lookup(ctx, "/"+r.PathValue("path"))
	if err != nil {
		s.renderError(w, r, err, browseURL(id, "/"))
		return
	}
	back := browseURL(id, path.Dir(p))
	if n.Type != repo.NodeFile {
		s.renderError(w, r, &httpError{code: http.StatusBadRequest, err: fmt.Errorf("%s is a %s, not a file: download a directory as an archive", showPath(f.rules, p), n.Type)}, back)
		return
	}
	if noContent(n) {
		s.renderError(w, r, &httpError{code: http.StatusNotFound, err: fmt.Errorf(
			"%s was not backed up (%s: %s): the snapshot holds no content for it",
			showPath(f.rules, p), n.Outcome, n.Reason)}, back)
		return
	}
	force := r.URL.Query().Get("force") == "1"
	if !n.Outcome.Whole() && !force {
		why := n.Outcome.String()
		if n.Reason != "" {
			why += ": " + n.Reason
		}
		s.renderError(w, r, &httpError{code: http.StatusConflict, err: fmt.Errorf(
			"%s was not backed up whole (%s): its stored content may not be a state the file really had",
			showPath(f.rules, p), why)}, back, crumb{Name: "Download it anyway", URL: fileURL(id, p) + "?force=1"})
		return
	}
	lock, err := f.repo.Repo.Lock(ctx, false, "web download")
	if err != nil {
		s.renderError(w, r, err, back)
		return
	}
	defer lock.Unlock()
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", attachment(n.Name))
	h.Set("Content-Length", strconv.FormatUint(n.Size, 10))
	cw := &countingWriter{w: w}
	_, err = restore.DumpFile(ctx, f.repo.Repo, p, n, cw, restore.DumpOptions{Force: force})
	if err != nil {
		if cw.n == 0 {
			h.Del("Content-Length")
			h.Del("Content-Disposition")
			s.renderError(w, r, err, back)
			return
		}
		// headers are sent: break the connection, so the download is
		// seen to fail rather than end short
		s.logf("web: download %s of snapshot %s: %v", p, id, err)
		panic(http.ErrAbortHandler)
	}
}

// noContent tells a file that failed or was skipped before any of it was
// read: its entry records the attempt, and there is nothing to download.
func noContent(n *repo.Node) bool {
	return (n.Outcome == outcome.Failed || n.Outcome == outcome.SkippedOpen) && len(n.Content) == 0 && n.Size == 0
}

// downloadArchive sends a directory of a snapshot as a tar or zip; files
// not stored whole are included, as `stillpoint dump` includes them.
func (s *Server) downloadArchive(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	format := r.URL.Query().Get("format")
	if format == "" {
		format = "tar"
	}
	if format != "tar" && format != "zip" {
		s.renderError(w, r, &httpError{code: http.StatusBadRequest, err: fmt.Errorf("format %q: want tar or zip", format)}, "/snapshots")
		return
	}
	f, err := s.findSnapshot(ctx, r.PathValue("id"))
	if err != nil {
		s.renderError(w, r, err, "/snapshots")
		return
	}
	id := f.snap.ID.String()
	p, n, err := f.lookup(ctx, "/"+r.PathValue("path"))
	if err != nil {
		s.renderError(w, r, err, browseURL(id, "/"))
		return
	}
	lock, err := f.repo.Repo.Lock(ctx, false, "web download")
	if err != nil {
		s.renderError(w, r, err, browseURL(id, p))
		return
	}
	defer lock.Unlock()
	name := "snapshot-" + f.snap.ID.Short()
	if p != "/" {
		name = n.Name
	}
	ctype := "application/x-tar"
	if format == "zip" {
		ctype = "application/zip"
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Disposition", attachment(name+"."+format))
	cw := &countingWriter{w: w}
	var problems []string
	_, err = restore.DumpArchive(ctx, f.repo.Repo, p, n, cw, restore.DumpOptions{Archive: format, OnEvent: func(e restore.Event) {
		if e.Kind == "error" {
			problems = append(problems, e.Path+": "+e.Message)
		}
	}})
	if err == nil && len(problems) > 0 {
		err = errors.New(strings.Join(problems, "; "))
	}
	if err != nil {
		if cw.n == 0 {
			w.Header().Del("Content-Disposition")
			s.renderError(w, r, err, browseURL(id, p))
			return
		}
		s.logf("web: archive %s of snapshot %s: %v", p, id, err)
		panic(http.ErrAbortHandler)
	}
}
