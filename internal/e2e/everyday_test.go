//go:build linux

package e2e

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/testutil/ci"
	"golang.org/x/sys/unix"
)

// everydaySource writes a tree with what stats, find and dump must get
// right: text that compresses, a large file and an exact copy of it (one
// set of blobs), hard links, a symlink, an empty file, odd modes, owners,
// an extended attribute and nanosecond times. It returns the restore-size
// figures computed from the files themselves.
func everydaySource(t *testing.T, src string) (files, size, dirs, others int64) {
	t.Helper()
	var text strings.Builder
	for i := 0; text.Len() < 300<<10; i++ {
		fmt.Fprintf(&text, "line %d of a log that compresses well: %s\n", i, words[i%len(words)])
	}
	mustWrite(t, filepath.Join(src, "docs", "a.txt"), []byte("alpha"))
	mustWrite(t, filepath.Join(src, "docs", "b.txt"), []byte(text.String()))
	writeRandom(t, filepath.Join(src, "data", "big.bin"), 11, 5<<20+333)
	big, _ := os.ReadFile(filepath.Join(src, "data", "big.bin"))
	mustWrite(t, filepath.Join(src, "data", "copy.bin"), big)
	mustWrite(t, filepath.Join(src, "data", "db.sqlite"), []byte("database pages"))
	mustWrite(t, filepath.Join(src, "links", "h1"), bytes.Repeat([]byte("hard link "), 100))
	noErr(t, os.Link(filepath.Join(src, "links", "h1"), filepath.Join(src, "links", "h2")))
	noErr(t, os.Symlink("../docs/a.txt", filepath.Join(src, "links", "sym")))
	mustWrite(t, filepath.Join(src, "empty"), nil)
	mustWrite(t, filepath.Join(src, "run.sh"), []byte("#!/bin/sh\necho hi\n"))
	noErr(t, unix.Chmod(filepath.Join(src, "run.sh"), 0o4751))
	noErr(t, os.Chmod(filepath.Join(src, "links"), 0o750))
	noErr(t, os.Lchown(filepath.Join(src, "docs", "a.txt"), 1234, 5678))
	noErr(t, os.Lchown(filepath.Join(src, "links", "sym"), 4321, 8765))
	if err := unix.Lsetxattr(filepath.Join(src, "docs", "a.txt"), "user.note", []byte("kept\x00binary"), 0); err != nil {
		t.Fatalf("this test needs user xattrs on %s: %v", src, err)
	}
	seen := map[uint64]bool{}
	var paths []string
	noErr(t, filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		noErr(t, err)
		paths = append(paths, p)
		info, _ := d.Info()
		switch {
		case d.IsDir():
			dirs++
		case info.Mode().IsRegular():
			files++
			ino := info.Sys().(*syscall.Stat_t).Ino
			if !seen[ino] {
				size += info.Size()
			}
			seen[ino] = true
		default:
			others++
		}
		return nil
	}))
	// the directories on the way to src are in the snapshot too
	dirs += int64(strings.Count(src, "/") - 1)
	for i := len(paths) - 1; i >= 0; i-- {
		ts := time.Date(2021, 3, 4, 5, 6, 7, 100000001+i*1000, time.UTC).UnixNano()
		noErr(t, unix.UtimesNanoAt(unix.AT_FDCWD, paths[i], []unix.Timespec{unix.NsecToTimespec(ts), unix.NsecToTimespec(ts)}, unix.AT_SYMLINK_NOFOLLOW))
	}
	return
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func num(t *testing.T, m map[string]any, key string) int64 {
	t.Helper()
	v, ok := m[key].(float64)
	if !ok {
		t.Fatalf("no number %q in %v", key, m)
	}
	return int64(v)
}

// meta describes every entry below dir for a comparison of metadata:
// type, mode, owner, mtime to the nanosecond, size, content, link target,
// the xattr, and which paths share an inode.
func meta(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	inodes := map[uint64]string{}
	noErr(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		noErr(t, err)
		rel, _ := filepath.Rel(dir, p)
		var st unix.Stat_t
		noErr(t, unix.Lstat(p, &st))
		s := fmt.Sprintf("mode %o uid %d gid %d", st.Mode, st.Uid, st.Gid)
		if rel != "." {
			s += fmt.Sprintf(" mtime %d", st.Mtim.Nano())
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			s += " " + fileHash(t, p)
			if st.Nlink > 1 {
				if first, ok := inodes[st.Ino]; ok {
					s += " link of " + first
				} else {
					inodes[st.Ino] = rel
				}
			}
		case unix.S_IFLNK:
			target, _ := os.Readlink(p)
			s += " -> " + target
		}
		buf := make([]byte, 64)
		if n, err := unix.Lgetxattr(p, "user.note", buf); err == nil {
			s += fmt.Sprintf(" xattr %q", buf[:n])
		}
		out[rel] = s
		return nil
	}))
	return out
}

func diffMeta(got, want map[string]string) string {
	var d []string
	for p, w := range want {
		if g := got[p]; g != w {
			d = append(d, fmt.Sprintf("%s: got %q, want %q", p, g, w))
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			d = append(d, "extra "+p)
		}
	}
	return strings.Join(d, "\n")
}

// TestEverydayCommands runs stats, find, dump and tag as a user does,
// against a tree whose figures are computed from the files themselves.
func TestEverydayCommands(t *testing.T) {
	ci.NeedRoot(t) // owners and the setuid bit
	e := newEnv(t)
	src := filepath.Join(t.TempDir(), "src")
	files, size, dirs, others := everydaySource(t, src)
	first := e.must(t, 0, "--json", "backup", "--tag", "first", src)
	id1 := summary(t, first.stdout)["snapshot_id"].(string)

	// stats restore-size: what a restore writes
	st := summary(t, e.must(t, 0, "--json", "stats", "latest").stdout)["stats"].(map[string]any)
	if num(t, st, "files") != files || num(t, st, "bytes") != size || num(t, st, "dirs") != dirs || num(t, st, "others") != others || num(t, st, "not_whole") != 0 {
		t.Fatalf("stats restore-size %v; want %d files, %d bytes, %d dirs, %d others", st, files, size, dirs, others)
	}
	human := e.must(t, 0, "stats", id1[:8])
	if !strings.Contains(human.stdout, fmt.Sprintf("files:        %d\n", files)) || !strings.Contains(human.stdout, fmt.Sprintf("(%d bytes)", size)) {
		t.Errorf("stats:\n%s", human.stdout)
	}
	// raw-data: the copy and the second hard link add no content
	raw := summary(t, e.must(t, 0, "--json", "stats", "--mode", "raw-data").stdout)
	rs := raw["stats"].(map[string]any)
	content := size - (5<<20 + 333)
	trees := num(t, rs, "uncompressed_bytes") - content
	if trees <= 0 || trees > 64<<10 || num(t, rs, "tree_blobs") != dirs+1 || num(t, rs, "stored_bytes") >= num(t, rs, "uncompressed_bytes") || raw["compression_ratio"].(float64) <= 1 {
		t.Fatalf("stats raw-data %v: want %d bytes of content plus a few KiB of %d trees, stored smaller", raw, content, dirs+1)
	}

	// a second snapshot in which the database is locked: skipped, its
	// previous version kept and marked
	db := filepath.Join(src, "data", "db.sqlite")
	dbMeta := meta(t, src)["data/db.sqlite"]
	mustWrite(t, db, []byte("database pages, written since"))
	holder, err := os.OpenFile(db, os.O_RDWR, 0)
	noErr(t, err)
	noErr(t, unix.Flock(int(holder.Fd()), unix.LOCK_EX))
	second := e.must(t, 3, "--json", "backup", "--snapshot", "off", "--open-files", "skip", "--retries", "0", src)
	holder.Close()
	id2 := summary(t, second.stdout)["snapshot_id"].(string)

	// find: newest first, with the outcome of a file that is not whole
	var matches []map[string]any
	for _, ev := range events(t, e.must(t, 0, "--json", "find", "db.sqlite").stdout) {
		if ev["type"] == "match" {
			matches = append(matches, ev)
		}
	}
	if len(matches) != 2 || matches[0]["snapshot"] != id2 || matches[1]["snapshot"] != id1 ||
		matches[0]["whole"] != false || matches[0]["outcome"] == "ok" || matches[1]["whole"] != true ||
		matches[1]["path"] != db || num(t, matches[1], "size") != int64(len("database pages")) {
		t.Fatalf("find db.sqlite: %v", matches)
	}
	mark := matches[0]["outcome"].(string)
	found := e.must(t, 0, "find", "db.sqlite")
	if !strings.Contains(found.stdout, db+"  ["+mark) || strings.Count(found.stdout, db) != 2 || !strings.Contains(found.stdout, "2 matches in 2 of 2 snapshots") {
		t.Errorf("find output:\n%s", found.stdout)
	}
	txt := e.must(t, 0, "find", "-i", "*.TXT", "--snapshot", id1)
	if !strings.Contains(txt.stdout, " 5  2021-03-04") || !strings.Contains(txt.stdout, src+"/docs/a.txt\n") || !strings.Contains(txt.stdout, "2 matches in 1 of 1 snapshot") {
		t.Errorf("find -i *.TXT:\n%s", txt.stdout)
	}
	if none := e.must(t, 0, "find", "/elsewhere/**"); !strings.Contains(none.stdout, "no match in 2 snapshots") {
		t.Errorf("find without a match:\n%s", none.stdout)
	}
	whole := e.must(t, 0, "--json", "find", "db.sqlite", "--outcome", "ok,ok-snapshot")
	if s := summary(t, whole.stdout); num(t, s, "matches") != 1 {
		t.Errorf("find --outcome ok: %v", s)
	}

	// dump a file: the bytes of the source
	big, _ := os.ReadFile(filepath.Join(src, "data", "big.bin"))
	if got := e.must(t, 0, "dump", id1, src+"/data/big.bin"); got.stdout != string(big) {
		t.Fatalf("dump of big.bin: %d bytes, want %d equal to the source", len(got.stdout), len(big))
	}
	// a file that is not whole is refused, and dumped with --force
	refused := e.must(t, 3, "dump", id2, db)
	if refused.stdout != "" || !strings.Contains(refused.stderr, "not backed up whole") || !strings.Contains(refused.stderr, "--force") {
		t.Errorf("dump of a file not whole: %s", refused)
	}
	forced := e.must(t, 3, "dump", "--force", id2, db)
	if forced.stdout != "database pages" || !strings.Contains(forced.stderr, "warning") {
		t.Errorf("dump --force: %s", forced)
	}
	// a directory as tar, extracted by GNU tar: contents and metadata equal
	want := meta(t, src)
	want["data/db.sqlite"] = dbMeta
	tarFile := filepath.Join(t.TempDir(), "src.tar")
	e.must(t, 0, "dump", id1, src, "--target", tarFile)
	out := t.TempDir()
	if b, err := exec.Command("tar", "--xattrs", "--xattrs-include=user.*", "--same-owner", "-xpf", tarFile, "-C", out).CombinedOutput(); err != nil {
		t.Fatalf("tar -x: %v\n%s", err, b)
	}
	if d := diffMeta(meta(t, filepath.Join(out, src)), want); d != "" {
		t.Fatalf("tar extracted differs from the source:\n%s", d)
	}
	// ... and to stdout, the whole snapshot; the latest holds a file that
	// is not whole: included, named, exit code 3
	all := e.must(t, 3, "dump", "latest", "/")
	if !strings.Contains(all.stderr, "warning: "+db+": dumped, but it was not backed up whole") {
		t.Errorf("dump latest / does not name the file that is not whole:\n%s", all.stderr)
	}
	list, err := listTar(all.stdout)
	noErr(t, err)
	if !strings.Contains(list, strings.TrimPrefix(src, "/")+"/data/big.bin\n") {
		t.Errorf("dump latest / lacks big.bin:\n%s", list)
	}
	// zip
	zipFile := filepath.Join(t.TempDir(), "src.zip")
	e.must(t, 0, "dump", id1, src+"/docs", "--archive", "zip", "--target", zipFile)
	zr, err := zip.OpenReader(zipFile)
	noErr(t, err)
	got := map[string]string{}
	for _, f := range zr.File {
		rc, _ := f.Open()
		b, _ := io.ReadAll(rc)
		rc.Close()
		got[f.Name] = fmt.Sprintf("%o %s", f.Mode(), b)
	}
	zr.Close()
	docs := strings.TrimPrefix(src, "/") + "/docs/"
	if got[docs+"a.txt"] != "644 alpha" || len(got) != 3 {
		t.Errorf("zip: %q", got)
	}
	// errors a user makes
	if bad := e.must(t, 1, "dump", id1, src+"/nope.txt"); !strings.Contains(bad.stderr, "not in the snapshot") || !strings.Contains(bad.stderr, "nearest directory that is: "+src) {
		t.Errorf("dump of a missing path: %s", bad)
	}
	if bad := e.must(t, 1, "dump", "fffffffff", "/"); !strings.Contains(bad.stderr, "no snapshot") {
		t.Errorf("dump of an unknown snapshot: %s", bad)
	}
	e.must(t, 2, "dump", "--archive", "rar", id1, src)

	// tag: a new manifest, the old one gone, the snapshot restores and checks
	tagged := events(t, e.must(t, 0, "--json", "tag", id1, "--add", "keep,monthly").stdout)
	newID := tagged[0]["new_id"].(string)
	ids := e.snapshotIDs(t)
	if newID == id1 || len(ids) != 2 || !hasString(ids, newID) || hasString(ids, id1) {
		t.Fatalf("after tag: snapshots %v, new id %s", ids, newID)
	}
	if got := e.must(t, 0, "ls", "latest@monthly", src+"/docs/a.txt"); !strings.Contains(got.stdout, "a.txt") {
		t.Errorf("latest@monthly: %s", got)
	}
	e.must(t, 0, "tag", newID[:10], "--remove", "first")
	same := e.must(t, 0, "tag", "latest@keep", "--add", "keep")
	if !strings.Contains(same.stdout, "unchanged, tags: keep, monthly") {
		t.Errorf("tag that changes nothing: %s", same)
	}
	set := e.must(t, 0, "tag", "latest@keep", "--set", "archived")
	if !strings.Contains(set.stdout, "tags: archived\n") {
		t.Errorf("tag --set: %s", set)
	}
	wantHash := treeHash(t, src)
	wantHash["data/db.sqlite"] = fmt.Sprintf("file:644:%x", sha256.Sum256([]byte("database pages")))
	e.restoreAndCompare(t, "latest@archived", src, wantHash)
	e.must(t, 0, "check", "--read-data")
	e.must(t, 2, "tag", "latest", "--set", "x", "--add", "y")
	e.must(t, 2, "tag", "latest")
	if bad := e.must(t, 1, "tag", "0000000000", "--add", "x"); !strings.Contains(bad.stderr, "no snapshot") {
		t.Errorf("tag of an unknown snapshot: %s", bad)
	}
	// an ambiguous prefix is refused by name: tag one snapshot until its
	// id starts with the other's first digit (each tag draws a new id)
	for range 200 {
		ids = e.snapshotIDs(t)
		if ids[0][0] == ids[1][0] {
			break
		}
		e.must(t, 0, "tag", ids[0], "--set", fmt.Sprint(time.Now().UnixNano()))
	}
	if ids[0][0] != ids[1][0] {
		t.Fatal("no two snapshot ids share a first digit after 200 tags")
	}
	for _, args := range [][]string{{"stats", ids[0][:1]}, {"dump", ids[0][:1], "/"}, {"find", "x", "-s", ids[0][:1]}, {"tag", ids[0][:1], "--add", "x"}} {
		if bad := e.must(t, 1, args...); !strings.Contains(bad.stderr, "ambiguous") {
			t.Errorf("ambiguous prefix: %s", bad)
		}
	}
	// all snapshots: the restore-size of both
	both := summary(t, e.must(t, 0, "--json", "stats").stdout)["stats"].(map[string]any)
	if num(t, both, "files") != 2*files || num(t, both, "bytes") != 2*size || num(t, both, "not_whole") != 1 || num(t, both, "snapshots") != 2 {
		t.Errorf("stats of both snapshots: %v", both)
	}
	e.must(t, 0, "check")
}

func hasString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// listTar lists a tar's names with `tar -t`.
func listTar(data string) (string, error) {
	cmd := exec.Command("tar", "-tf", "-")
	cmd.Stdin = strings.NewReader(data)
	out, err := cmd.Output()
	return string(out), err
}

// TestEverydayCutShort: a reader that stops early (`dump … | head`) ends
// the command quietly, and its lock is released (SIGPIPE would kill it
// with the lock still held).
func TestEverydayCutShort(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(t.TempDir(), "src")
	// more than a pipe holds (64 KiB) of each output
	for i := range 3000 {
		writeRandom(t, filepath.Join(src, fmt.Sprintf("d%d", i%10), fmt.Sprintf("f%04d", i)), uint64(i), 1<<10)
	}
	writeRandom(t, filepath.Join(src, "big"), 1, 4<<20)
	e.must(t, 0, "backup", src)
	for _, args := range [][]string{{"dump", "latest", "/"}, {"dump", "latest", src + "/big"}, {"find", "*"}} {
		cmd := e.command(context.Background(), args...)
		stdout, err := cmd.StdoutPipe()
		noErr(t, err)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		noErr(t, cmd.Start())
		if _, err := io.ReadFull(stdout, make([]byte, 1000)); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		stdout.Close()
		err = cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || stderr.Len() != 0 {
			t.Errorf("%v cut short: %v (want exit 1, nothing on stderr), stderr %q", args, err, stderr.String())
		}
		if locks, _ := os.ReadDir(filepath.Join(e.repo, "locks")); len(locks) != 0 {
			t.Fatalf("%v cut short left %d locks", args, len(locks))
		}
	}
}

// TestEverydayHelp: each command explains itself with examples.
func TestEverydayHelp(t *testing.T) {
	e := newEnv(t)
	for _, c := range []string{"stats", "find", "dump", "tag"} {
		h := e.must(t, 0, c, "--help")
		if !strings.Contains(h.stdout, "Examples:") || !strings.Contains(h.stdout, "stillpoint "+c) {
			t.Errorf("%s --help:\n%s", c, h.stdout)
		}
	}
	e.must(t, 2, "stats", "--mode", "blobs")
	e.must(t, 2, "find")
	e.must(t, 2, "dump", "latest")
}
