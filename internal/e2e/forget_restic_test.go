//go:build linux

package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/retention"
)

// The proof that forget keeps what restic 0.19.1 keeps: the same timelines
// (hundreds of snapshots of several hosts in Berlin and New York time, over
// DST changes, with gaps of minutes to months, tags and paths) are written
// into a restic repository, and each policy's kept set and reasons from
// `restic forget --dry-run --json` are compared with stillpoint's, per
// group. restic comes from $STILLPOINT_RESTIC (test.sh builds it with
// bench/lib.sh); without it the test skips, and fails when CI=true.

const resticVersion = "0.19.1"

// resticBinary is the restic to compare with.
func resticBinary(t *testing.T) string {
	t.Helper()
	p := os.Getenv("STILLPOINT_RESTIC")
	if p == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("STILLPOINT_RESTIC is not set: test.sh builds restic " + resticVersion + " (bench/lib.sh) and sets it; in CI this test must run")
		}
		t.Skip("STILLPOINT_RESTIC is not set (test.sh sets it to restic " + resticVersion + ")")
	}
	out, err := exec.Command(p, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "restic "+resticVersion+" ") {
		t.Fatalf("STILLPOINT_RESTIC=%s is not restic %s: %v %s", p, resticVersion, err, out)
	}
	return p
}

// fixtureSource is a small program built inside a copy of restic's own
// source (its internal packages cannot be imported from elsewhere). It
// saves snapshots with restic's code exactly as `restic backup --time T
// --host H --tag … PATHS` records them (time.ParseInLocation in the zone,
// data.NewSnapshot, data.SaveSnapshot), without a process and a key
// derivation (half a second each) per snapshot.
const fixtureSource = `package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/restic/restic/internal/backend/local"
	"github.com/restic/restic/internal/data"
	"github.com/restic/restic/internal/global"
	"github.com/restic/restic/internal/repository"
	"github.com/restic/restic/internal/restic"
)

// usage: spfixture REPO TREE < lines "zone\ttime\thost\ttags\tpaths"
// (tags and paths separated by commas); prints one snapshot id per line.
func main() {
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "spfixture:", err)
		os.Exit(1)
	}
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func run(path, treeHex string) error {
	ctx := context.Background()
	be, err := local.Open(ctx, local.Config{Path: path, Connections: 2}, nil)
	if err != nil {
		return err
	}
	repo, err := repository.New(be, repository.Options{})
	if err != nil {
		return err
	}
	if err := repo.SearchKey(ctx, os.Getenv("RESTIC_PASSWORD"), 0, ""); err != nil {
		return err
	}
	tree, err := restic.ParseID(treeHex)
	if err != nil {
		return err
	}
	in := bufio.NewScanner(os.Stdin)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for in.Scan() {
		f := strings.Split(in.Text(), "\t")
		if len(f) != 5 {
			return fmt.Errorf("bad line %q", in.Text())
		}
		loc, err := time.LoadLocation(f[0])
		if err != nil {
			return err
		}
		t, err := time.ParseInLocation(global.TimeFormat, f[1], loc)
		if err != nil {
			return err
		}
		sn, err := data.NewSnapshot(split(f[4]), split(f[3]), f[2], t)
		if err != nil {
			return err
		}
		sn.Tree = &tree
		id, err := data.SaveSnapshot(ctx, repo, sn)
		if err != nil {
			return err
		}
		fmt.Fprintln(out, id)
	}
	return in.Err()
}
`

// buildFixture builds fixtureSource in a copy of restic's module source.
func buildFixture(t *testing.T) string {
	t.Helper()
	tmp := t.TempDir()
	dl := exec.Command("go", "mod", "download", "-json", "github.com/restic/restic@v"+resticVersion)
	dl.Dir = tmp // outside stillpoint's module
	dl.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	out, err := dl.Output()
	if err != nil {
		t.Fatalf("go mod download restic: %v\n%s", err, out)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download restic: %v\n%s", err, out)
	}
	src := filepath.Join(tmp, "restic")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"go.mod", "go.sum", "internal"} {
		if out, err := exec.Command("cp", "-r", filepath.Join(mod.Dir, name), src).CombinedOutput(); err != nil {
			t.Fatalf("copy restic source: %v\n%s", err, out)
		}
	}
	if out, err := exec.Command("chmod", "-R", "u+w", src).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	mustWrite(t, filepath.Join(src, "cmd", "spfixture", "main.go"), []byte(fixtureSource))
	bin := filepath.Join(tmp, "spfixture")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/spfixture")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the restic fixture writer: %v\n%s", err, out)
	}
	return bin
}

// tsnap is one snapshot of a timeline as the user would take it:
// `backup --time Local --host Host --tag … Paths` with TZ=Zone.
type tsnap struct {
	Zone, Local, Host string
	Tags, Paths       []string
}

// at is the snapshot's time as both programs parse --time.
func (s tsnap) at(t *testing.T) time.Time {
	loc, err := time.LoadLocation(s.Zone)
	if err != nil {
		t.Fatal(err)
	}
	tm, err := time.ParseInLocation(time.DateTime, s.Local, loc)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

// loadedIn is t as a process with time zone loc reads it back from JSON
// (RFC 3339 with the offset): in loc when loc has that offset at that
// moment, else in a fixed zone of the offset ("Z": UTC). Both restic and
// stillpoint compute periods, and --keep-within's calendar arithmetic, in
// what this returns.
func loadedIn(t time.Time, loc *time.Location) time.Time {
	// what time.Time.UnmarshalJSON does with time.Local = loc
	_, off := t.Zone()
	if off == 0 {
		return t.UTC()
	}
	if _, locOff := t.In(loc).Zone(); locOff == off {
		return t.In(loc)
	}
	return t.In(time.FixedZone("", off))
}

// timeline makes n snapshots per host, seeded, from September 2023 on:
// mostly hours apart, sometimes minutes, sometimes days or months (gaps),
// plus wall-clock times that fall into DST gaps and overlaps.
func timeline(seed uint64, n int, hosts []struct {
	name  string
	zones []string // the zone changes by month (a laptop that travels)
	paths [][]string
}) []tsnap {
	r := rand.New(rand.NewPCG(seed, 12))
	tagSets := [][]string{nil, nil, {"daily"}, {"db"}, {"daily", "db"}, {"weekly"}, {"db", "daily"}}
	var out []tsnap
	used := map[int64]bool{}
	add := func(s tsnap) {
		loc, _ := time.LoadLocation(s.Zone)
		tm, err := time.ParseInLocation(time.DateTime, s.Local, loc)
		if err != nil || used[tm.Unix()] {
			return // one snapshot per second: restic leaves the order of equal times to chance
		}
		used[tm.Unix()] = true
		out = append(out, s)
	}
	for _, h := range hosts {
		t := time.Date(2023, 9, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(r.IntN(86400)) * time.Second)
		for range n {
			switch x := r.IntN(100); {
			case x < 15:
				t = t.Add(time.Duration(5+r.IntN(85)) * time.Minute)
			case x < 85:
				t = t.Add(time.Duration(1+r.IntN(26)) * time.Hour)
			case x < 95:
				t = t.Add(time.Duration(2+r.IntN(19)) * 24 * time.Hour)
			default:
				t = t.Add(time.Duration(30+r.IntN(90)) * 24 * time.Hour)
			}
			t = t.Add(time.Duration(r.IntN(3600)) * time.Second)
			zone := h.zones[int(t.Month())%len(h.zones)]
			loc, _ := time.LoadLocation(zone)
			add(tsnap{Zone: zone, Local: t.In(loc).Format(time.DateTime), Host: h.name,
				Tags: tagSets[r.IntN(len(tagSets))], Paths: h.paths[r.IntN(len(h.paths))]})
		}
		// wall-clock times that do not exist or exist twice
		for _, dst := range []struct{ zone, local string }{
			{"Europe/Berlin", "2024-03-31 02:30:00"}, {"Europe/Berlin", "2024-10-27 02:30:00"},
			{"Europe/Berlin", "2025-03-30 02:15:00"}, {"Europe/Berlin", "2025-10-26 02:45:00"},
			{"America/New_York", "2024-03-10 02:30:00"}, {"America/New_York", "2024-11-03 01:30:00"},
			{"America/New_York", "2025-03-09 02:10:00"}, {"America/New_York", "2025-11-02 01:20:00"},
		} {
			if contains(h.zones, dst.zone) {
				sec := r.IntN(60)
				add(tsnap{Zone: dst.zone, Local: dst.local[:17] + fmt.Sprintf("%02d", sec), Host: h.name,
					Tags: tagSets[r.IntN(len(tagSets))], Paths: h.paths[0]})
			}
		}
	}
	return out
}

func contains(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}

// resticRepo is a restic repository holding a timeline.
type resticRepo struct {
	restic, dir string
	ids         []string // restic's snapshot id of each timeline entry
}

func (r *resticRepo) cmd(tz string, args ...string) *exec.Cmd {
	c := exec.Command("nice", append([]string{"-n", "15", r.restic, "--no-cache", "-q"}, args...)...)
	c.Env = append(os.Environ(), "RESTIC_REPOSITORY="+r.dir, "RESTIC_PASSWORD=stillpoint", "TZ="+tz)
	return c
}

// newResticRepo creates a restic repository and writes the timeline into
// it: one real `restic backup` gives a tree, the fixture writer the
// snapshots, then the backup's own snapshot is removed.
func newResticRepo(t *testing.T, resticBin, fixture string, tl []tsnap) *resticRepo {
	t.Helper()
	d := t.TempDir()
	r := &resticRepo{restic: resticBin, dir: filepath.Join(d, "repo")}
	src := filepath.Join(d, "src")
	mustWrite(t, filepath.Join(src, "f"), []byte("x"))
	for _, args := range [][]string{{"init"}, {"backup", "--host", "seed", src}} {
		if out, err := r.cmd("UTC", args...).CombinedOutput(); err != nil {
			t.Fatalf("restic %v: %v\n%s", args, err, out)
		}
	}
	out, err := r.cmd("UTC", "snapshots", "--json").Output()
	if err != nil {
		t.Fatalf("restic snapshots: %v", err)
	}
	var seed []struct{ ID, Tree string }
	if err := json.Unmarshal(out, &seed); err != nil || len(seed) != 1 {
		t.Fatalf("restic snapshots --json: %v\n%s", err, out)
	}
	var in strings.Builder
	for _, s := range tl {
		fmt.Fprintf(&in, "%s\t%s\t%s\t%s\t%s\n", s.Zone, s.Local, s.Host, strings.Join(s.Tags, ","), strings.Join(s.Paths, ","))
	}
	fx := exec.Command(fixture, r.dir, seed[0].Tree)
	fx.Env = append(os.Environ(), "RESTIC_PASSWORD=stillpoint")
	fx.Stdin = strings.NewReader(in.String())
	var stderr bytes.Buffer
	fx.Stderr = &stderr
	out, err = fx.Output()
	if err != nil {
		t.Fatalf("fixture writer: %v\n%s", err, stderr.String())
	}
	r.ids = strings.Fields(string(out))
	if len(r.ids) != len(tl) {
		t.Fatalf("fixture writer saved %d snapshots of %d", len(r.ids), len(tl))
	}
	if err := os.Remove(filepath.Join(r.dir, "snapshots", seed[0].ID)); err != nil {
		t.Fatal(err)
	}
	return r
}

// decision is a forget's outcome in a form both programs produce: one line
// per snapshot, "group | entry | kept: reasons" or "… | removed", sorted;
// or the refusal to empty a group.
type decision struct {
	lines   []string
	refused bool
}

func (d decision) String() string {
	if d.refused {
		return "refused: the policy would remove every snapshot of a group"
	}
	return strings.Join(d.lines, "\n")
}

func groupName(host string, paths, tags []string) string {
	return fmt.Sprintf("host=%q paths=%q tags=%q", host, paths, tags)
}

// resticForget runs `restic forget --dry-run --json` with args in zone tz.
func (r *resticRepo) forget(t *testing.T, tz string, args []string) decision {
	t.Helper()
	c := r.cmd(tz, append([]string{"forget", "--dry-run", "--json", "--no-lock"}, args...)...)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	if err != nil {
		if strings.Contains(stderr.String(), "refusing to delete last snapshot of snapshot group") {
			return decision{refused: true}
		}
		t.Fatalf("restic forget %v: %v\n%s", args, err, stderr.String())
	}
	index := map[string]int{}
	for i, id := range r.ids {
		index[id] = i
	}
	type snap struct {
		ID string `json:"id"`
	}
	var groups []struct {
		Host    string   `json:"host"`
		Paths   []string `json:"paths"`
		Tags    []string `json:"tags"`
		Keep    []snap   `json:"keep"`
		Remove  []snap   `json:"remove"`
		Reasons []struct {
			Snapshot snap     `json:"snapshot"`
			Matches  []string `json:"matches"`
		} `json:"reasons"`
	}
	var jsonLine string
	for _, l := range strings.Split(stdout.String(), "\n") {
		if strings.HasPrefix(l, "[") {
			jsonLine = l
		}
	}
	if jsonLine == "" {
		// no snapshot matched: no groups
		return decision{}
	}
	if err := json.Unmarshal([]byte(jsonLine), &groups); err != nil {
		t.Fatalf("restic forget --json: %v\n%s", err, stdout.String())
	}
	var d decision
	for _, g := range groups {
		name := groupName(g.Host, g.Paths, g.Tags)
		if len(g.Reasons) != len(g.Keep) {
			t.Fatalf("restic: %d kept, %d reasons", len(g.Keep), len(g.Reasons))
		}
		for _, k := range g.Reasons {
			i, ok := index[k.Snapshot.ID]
			if !ok {
				t.Fatalf("restic kept an unknown snapshot %s", k.Snapshot.ID)
			}
			d.lines = append(d.lines, fmt.Sprintf("%s | %d | kept: %s", name, i, strings.Join(k.Matches, ", ")))
		}
		for _, s := range g.Remove {
			d.lines = append(d.lines, fmt.Sprintf("%s | %d | removed", name, index[s.ID]))
		}
	}
	sort.Strings(d.lines)
	return d
}

// parseForgetArgs reads restic's forget flags into stillpoint's options
// (the CLI's own parsing is checked end to end by the binary).
func parseForgetArgs(t *testing.T, args []string) retention.Options {
	t.Helper()
	o := retention.Options{GroupBy: retention.DefaultGroupBy}
	p := &o.Policy
	counts := map[string]*int{"--keep-last": &p.Last, "--keep-hourly": &p.Hourly, "--keep-daily": &p.Daily,
		"--keep-weekly": &p.Weekly, "--keep-monthly": &p.Monthly, "--keep-yearly": &p.Yearly}
	durations := map[string]*retention.Duration{"--keep-within": &p.Within, "--keep-within-hourly": &p.WithinHourly,
		"--keep-within-daily": &p.WithinDaily, "--keep-within-weekly": &p.WithinWeekly,
		"--keep-within-monthly": &p.WithinMonthly, "--keep-within-yearly": &p.WithinYearly}
	for i := 0; i+1 < len(args); i += 2 {
		flag, val := args[i], args[i+1]
		var err error
		switch {
		case counts[flag] != nil:
			*counts[flag], err = retention.ParseCount(val)
		case durations[flag] != nil:
			*durations[flag], err = retention.ParseDuration(val)
		case flag == "--keep-tag":
			p.Tags = append(p.Tags, retention.ParseTagList(val))
		case flag == "--group-by":
			o.GroupBy, err = retention.ParseGroupBy(val)
		case flag == "--host":
			o.Filter.Hosts = append(o.Filter.Hosts, val)
		case flag == "--tag":
			o.Filter.Tags = append(o.Filter.Tags, retention.ParseTagList(val))
		case flag == "--path":
			o.Filter.Paths = append(o.Filter.Paths, val)
		default:
			t.Fatalf("unknown flag %s", flag)
		}
		if err != nil {
			t.Fatalf("%s %s: %v", flag, val, err)
		}
	}
	return o
}

// stillpointForget applies the policy with package retention to the
// timeline as a process in zone tz reads it back.
func stillpointForget(t *testing.T, tl []tsnap, tz string, args []string) decision {
	t.Helper()
	loc, err := time.LoadLocation(tz)
	if err != nil {
		t.Fatal(err)
	}
	snaps := make([]retention.Snapshot, len(tl))
	for i, s := range tl {
		snaps[i] = retention.Snapshot{ID: strconv.Itoa(i), Time: loadedIn(s.at(t), loc), Host: s.Host, Paths: s.Paths, Tags: s.Tags}
	}
	groups, err := retention.Plan(snaps, parseForgetArgs(t, args))
	var kn *retention.KeepsNothingError
	switch {
	case errors.As(err, &kn):
		return decision{refused: true}
	case errors.Is(err, retention.ErrNoMatch):
		return decision{} // restic: no groups, nothing removed
	case err != nil:
		t.Fatalf("stillpoint %v: %v", args, err)
	}
	var d decision
	for _, g := range groups {
		name := groupName(g.Key.Host, g.Key.Paths, g.Key.Tags)
		for _, k := range g.Keep {
			d.lines = append(d.lines, fmt.Sprintf("%s | %s | kept: %s", name, k.ID, strings.Join(k.Reasons, ", ")))
		}
		for _, s := range g.Remove {
			d.lines = append(d.lines, fmt.Sprintf("%s | %s | removed", name, s.ID))
		}
	}
	sort.Strings(d.lines)
	return d
}

// diffDecisions shows the first lines that differ.
func diffDecisions(got, want decision) string {
	if got.refused != want.refused {
		return fmt.Sprintf("stillpoint: %s\nrestic: %s", firstLines(got.String()), firstLines(want.String()))
	}
	g, w := map[string]bool{}, map[string]bool{}
	for _, l := range got.lines {
		g[l] = true
	}
	for _, l := range want.lines {
		w[l] = true
	}
	var out []string
	for _, l := range want.lines {
		if !g[l] {
			out = append(out, "restic only:     "+l)
		}
	}
	for _, l := range got.lines {
		if !w[l] {
			out = append(out, "stillpoint only: "+l)
		}
	}
	if len(out) > 20 {
		out = append(out[:20], fmt.Sprintf("… %d more", len(out)-20))
	}
	return strings.Join(out, "\n")
}

func firstLines(s string) string {
	l := strings.SplitN(s, "\n", 6)
	if len(l) > 5 {
		l[5] = "…"
	}
	return strings.Join(l, "\n")
}

// forgetPolicies are the policies compared: each counting rule (with
// unlimited), each within rule, tags, grouping and filters, and mixes.
var forgetPolicies = [][]string{
	{"--keep-last", "5"},
	{"--keep-last", "unlimited"},
	{"--keep-hourly", "30"},
	{"--keep-daily", "14"},
	{"--keep-weekly", "10"},
	{"--keep-monthly", "12"},
	{"--keep-yearly", "3"},
	{"--keep-daily", "unlimited"},
	{"--keep-weekly", "unlimited"},
	{"--keep-daily", "7", "--keep-weekly", "5", "--keep-monthly", "12", "--keep-yearly", "unlimited"},
	{"--keep-hourly", "24", "--keep-daily", "30", "--keep-monthly", "6"},
	{"--keep-within", "2m"},
	{"--keep-within", "1y2m3d4h"},
	{"--keep-within", "36h"},
	{"--keep-within-hourly", "3d"},
	{"--keep-within-daily", "1m"},
	{"--keep-within-weekly", "6m"},
	{"--keep-within-monthly", "1y"},
	{"--keep-within-yearly", "5y"},
	{"--keep-within-daily", "10d", "--keep-within-weekly", "2m", "--keep-within-monthly", "1y", "--keep-last", "3"},
	{"--keep-tag", "db", "--keep-last", "2"},
	{"--keep-tag", "daily,db", "--keep-tag", "weekly", "--keep-daily", "3"},
	{"--keep-tag", "", "--keep-weekly", "2"},
	{"--keep-tag", "daily,db", "--group-by", "tags"}, // the group tagged weekly has none: both refuse
	{"--keep-last", "3", "--group-by", "host"},
	{"--keep-daily", "10", "--group-by", ""},
	{"--keep-weekly", "4", "--group-by", "host,paths,tags"},
	{"--keep-monthly", "3", "--keep-within", "10d", "--group-by", "tags"},
	{"--keep-last", "2", "--host", "berlin"},
	{"--keep-daily", "5", "--tag", "db"},
	{"--keep-weekly", "3", "--path", "/srv/app"},
	{"--keep-monthly", "unlimited", "--tag", ""},
	{"--keep-hourly", "48", "--host", "laptop", "--host", "newyork", "--group-by", "host"},
}

var forgetHosts = []struct {
	name  string
	zones []string
	paths [][]string
}{
	{"berlin", []string{"Europe/Berlin"}, [][]string{{"/srv/app"}, {"/srv/app"}, {"/etc", "/srv/app"}}},
	{"newyork", []string{"America/New_York"}, [][]string{{"/home"}}},
	{"laptop", []string{"Europe/Berlin", "America/New_York", "UTC"}, [][]string{{"/home/me"}, {"/home/me", "/srv/app"}}},
}

func TestForgetMatchesRestic(t *testing.T) {
	resticBin := resticBinary(t)
	start := time.Now()
	fixture := buildFixture(t)
	tl := timeline(20261201, 140, forgetHosts)
	r := newResticRepo(t, resticBin, fixture, tl)
	t.Logf("%d snapshots written to restic in %.1fs (fixture build included)", len(tl), time.Since(start).Seconds())

	// the forget runs in each snapshot zone and in one no snapshot uses, so
	// times come back both in a zone with DST and in fixed offsets
	type run struct {
		tz   string
		args []string
	}
	var runs []run
	for i, p := range forgetPolicies {
		runs = append(runs, run{"Europe/Berlin", p})
		if i%3 == 0 {
			runs = append(runs, run{"America/New_York", p})
		}
		if i%5 == 1 {
			runs = append(runs, run{"Asia/Kolkata", p})
		}
	}
	kept, refused := 0, 0
	for _, c := range runs {
		want := r.forget(t, c.tz, c.args)
		got := stillpointForget(t, tl, c.tz, c.args)
		if diff := diffDecisions(got, want); diff != "" {
			t.Errorf("TZ=%s forget %s: stillpoint and restic differ:\n%s", c.tz, strings.Join(c.args, " "), diff)
			continue
		}
		if want.refused {
			refused++
		}
		for _, l := range want.lines {
			if strings.Contains(l, "| kept:") {
				kept++
			}
		}
	}
	if refused == 0 {
		t.Error("no policy was refused: the refusal to empty a group is not compared")
	}
	t.Logf("%d policies × zones compared over %d snapshots (%d kept in all, %d refused), %.1fs", len(runs), len(tl), kept, refused, time.Since(start).Seconds())
}

// forgetDecision reads `stillpoint --json forget --dry-run` the way
// resticRepo.forget reads restic's.
func forgetDecision(t *testing.T, res result, index map[string]int) decision {
	t.Helper()
	if res.code != 0 {
		if strings.Contains(res.stderr, "refusing to remove every snapshot of the group") {
			return decision{refused: true}
		}
		t.Fatalf("forget failed: %s", res)
	}
	var ev struct {
		Groups []struct {
			Host  string   `json:"host"`
			Paths []string `json:"paths"`
			Tags  []string `json:"tags"`
			Keep  []struct {
				ID      string   `json:"id"`
				Reasons []string `json:"reasons"`
			} `json:"keep"`
			Remove []struct {
				ID string `json:"id"`
			} `json:"remove"`
		} `json:"groups"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(res.stdout)), &ev); err != nil {
		t.Fatalf("forget --json: %v\n%s", err, res)
	}
	var d decision
	for _, g := range ev.Groups {
		name := groupName(g.Host, g.Paths, g.Tags)
		for _, k := range g.Keep {
			d.lines = append(d.lines, fmt.Sprintf("%s | %d | kept: %s", name, index[k.ID], strings.Join(k.Reasons, ", ")))
		}
		for _, r := range g.Remove {
			d.lines = append(d.lines, fmt.Sprintf("%s | %d | removed", name, index[r.ID]))
		}
	}
	sort.Strings(d.lines)
	return d
}

// TestForgetEndToEndMatchesRestic takes a timeline with the real
// `stillpoint backup --time` (TZ set per snapshot, as a user in that zone
// would) and compares `stillpoint forget` with restic's forget of the same
// timeline, then forgets for real and checks what is left.
func TestForgetEndToEndMatchesRestic(t *testing.T) {
	resticBin := resticBinary(t)
	start := time.Now()
	e := newEnv(t)
	d := t.TempDir()
	a, b := filepath.Join(d, "a"), filepath.Join(d, "b")
	mustWrite(t, filepath.Join(a, "f"), []byte("a"))
	mustWrite(t, filepath.Join(b, "g"), []byte("b"))
	hosts := []struct {
		name  string
		zones []string
		paths [][]string
	}{
		{"berlin", []string{"Europe/Berlin"}, [][]string{{a}, {a}, {a, b}}},
		{"travel", []string{"America/New_York", "Europe/Berlin"}, [][]string{{b}}},
	}
	tl := timeline(7, 22, hosts)
	index := map[string]int{}
	for i, s := range tl {
		args := []string{"--json", "backup", "--time", s.Local, "--host", s.Host}
		for _, tag := range s.Tags {
			args = append(args, "--tag", tag)
		}
		e.extra = []string{"TZ=" + s.Zone}
		res := e.must(t, 0, append(args, s.Paths...)...)
		index[summary(t, res.stdout)["snapshot_id"].(string)] = i
	}
	t.Logf("%d stillpoint backups in %.1fs", len(tl), time.Since(start).Seconds())
	r := newResticRepo(t, resticBin, buildFixture(t), tl)

	policies := [][]string{
		{"--keep-daily", "3", "--keep-weekly", "2", "--keep-monthly", "unlimited"},
		{"--keep-within-daily", "20d", "--keep-tag", "db", "--keep-hourly", "5"},
		{"--keep-last", "2", "--group-by", "host"},
		{"--keep-within", "1m", "--host", "travel"},
		{"--keep-tag", "weekly", "--group-by", ""},
	}
	for _, tz := range []string{"Europe/Berlin", "America/New_York"} {
		e.extra = []string{"TZ=" + tz}
		for _, p := range policies {
			want := r.forget(t, tz, p)
			got := forgetDecision(t, e.run(t, append([]string{"--json", "forget", "--dry-run"}, p...)...), index)
			if diff := diffDecisions(got, want); diff != "" {
				t.Errorf("TZ=%s forget %s: stillpoint and restic differ:\n%s", tz, strings.Join(p, " "), diff)
			}
		}
	}
	if n := len(e.snapshotIDs(t)); n != len(tl) {
		t.Fatalf("a dry run removed snapshots: %d of %d left", n, len(tl))
	}

	// for real: what is left is what restic keeps
	e.extra = []string{"TZ=Europe/Berlin"}
	want := r.forget(t, "Europe/Berlin", policies[0])
	e.must(t, 0, append([]string{"forget"}, policies[0]...)...)
	var left []string
	for _, id := range e.snapshotIDs(t) {
		left = append(left, strconv.Itoa(index[id]))
	}
	var keptByRestic []string
	for _, l := range want.lines {
		if f := strings.Split(l, " | "); strings.HasPrefix(f[2], "kept") {
			keptByRestic = append(keptByRestic, f[1])
		}
	}
	sort.Strings(left)
	sort.Strings(keptByRestic)
	if strings.Join(left, " ") != strings.Join(keptByRestic, " ") {
		t.Errorf("after forget, left %v; restic keeps %v", left, keptByRestic)
	}
	t.Logf("%d snapshots, %d policies in 2 zones, forget kept %d; %.1fs", len(tl), len(policies), len(left), time.Since(start).Seconds())
}
