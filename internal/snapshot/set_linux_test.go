package snapshot

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/stillpoint-backup/stillpoint/internal/testutil/loopfs"
)

func mountBind(src, dst string) error { return unix.Mount(src, dst, "", unix.MS_BIND, "") }

func unmountT(t *testing.T, p string) {
	if err := unix.Unmount(p, 0); err != nil {
		unix.Unmount(p, unix.MNT_DETACH)
	}
}

// required fails before anything exists, naming source, filesystem, why
// and the way out; auto and on fall back to live with a note or warning.
func TestRequiredWithoutProvider(t *testing.T) {
	for name, mk := range map[string]func(testing.TB, int) string{"ext4": loopfs.Ext4, "tmpfs": loopfs.Tmpfs} {
		t.Run(name, func(t *testing.T) {
			mnt := mk(t, 0)
			data := filepath.Join(mnt, "srv", "data")
			write(t, data+"/f", "x")
			_, err := NewSet(context.Background(), []Source{{data, Required}}, Options{})
			var re *RequiredError
			if !errors.As(err, &re) {
				t.Fatalf("err = %v, want a RequiredError", err)
			}
			msg := err.Error()
			for _, want := range []string{data + " is on " + name, "no snapshot provider fits", "use --snapshot on to read live", "btrfs:", "reflink:"} {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q lacks %q", msg, want)
				}
			}
			ents, _ := os.ReadDir(mnt)
			for _, e := range ents {
				if e.Name() != "srv" && e.Name() != "lost+found" {
					t.Errorf("the failed run left %s in %s", e.Name(), mnt)
				}
			}
			assertClean(t, mnt, 0)

			for _, pol := range []Policy{Auto, On} {
				s, err := NewSet(context.Background(), []Source{{data, pol}}, Options{})
				if err != nil {
					t.Fatal(err)
				}
				got := s.Notes
				if pol == On {
					got = s.Warnings
				}
				if s.Consistency() != Live || len(got) != 1 || !strings.Contains(got[0], "reading live") {
					t.Errorf("%s: consistency %s, notes %q, warnings %q", pol, s.Consistency(), s.Notes, s.Warnings)
				}
				if b := readAll(t, s, data+"/f"); string(b) != "x" {
					t.Errorf("live read %q", b)
				}
				if err := s.Release(); err != nil {
					t.Fatal(err)
				}
			}
			assertClean(t, mnt, 0)
		})
	}
}

// A run killed with SIGKILL while holding a btrfs snapshot and a reflink
// staging directory leaves them; the next run finds and removes them.
func TestLeftoversOfKilledRun(t *testing.T) {
	bt := loopfs.Btrfs(t, 0)
	xfs := loopfs.XFS(t, 0)
	mkSubvol(t, bt+"/data")
	write(t, bt+"/data/f", "b")
	write(t, xfs+"/data/f", "x")

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=holdset", "SOURCES="+bt+"/data,"+xfs+"/data", "CLONE="+xfs+"/data/f")
	waitReady(t, cmd)
	// Our own live set on the same filesystems must survive the cleanup.
	mine, err := NewSet(context.Background(), []Source{{bt + "/data", Required}, {xfs + "/data", Required}}, Options{KeepLeftovers: true})
	if err != nil {
		t.Fatal(err)
	}
	defer mine.Release()

	los, err := FindLeftovers([]string{bt + "/data", xfs})
	if err != nil {
		t.Fatal(err)
	}
	if len(los) != 4 {
		t.Fatalf("want 4 labelled dirs (2 of the child, 2 ours), got %s", dumpJSON(los))
	}
	for _, lo := range los {
		if !lo.InUse {
			t.Fatalf("%s is not in use but both owners live", lo.Path)
		}
	}
	if err := Cleanup(los); err != nil { // all in use: must touch nothing
		t.Fatal(err)
	}

	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	los, err = FindLeftovers(nil) // every mount
	if err != nil {
		t.Fatal(err)
	}
	var stale []Leftover
	for _, lo := range los {
		if !lo.InUse {
			stale = append(stale, lo)
			if lo.Label.RunID != "killed" || lo.Label.PID != cmd.Process.Pid || !strings.Contains(lo.Reason, "gone") {
				t.Errorf("stale leftover %s", dumpJSON(lo))
			}
		}
	}
	if len(stale) != 2 {
		t.Fatalf("want the killed run's 2 leftovers, got %s", dumpJSON(los))
	}
	// The next run removes them by itself.
	next, err := NewSet(context.Background(), []Source{{bt + "/data", Auto}, {xfs + "/data", Auto}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(next.Removed) != 2 {
		t.Errorf("next run removed %s", dumpJSON(next.Removed))
	}
	for _, s := range []*Set{next, mine} {
		if err := s.Release(); err != nil {
			t.Fatal(err)
		}
	}
	assertClean(t, bt, 1)
	assertClean(t, xfs, 0)
}

// failing wraps a provider and fails its Create.
type failing struct{ Provider }

func (f failing) Create(context.Context, []string, Label) (Snapshot, error) {
	return nil, errors.New("injected failure")
}

// A failure in the middle of a set releases what was made before it.
func TestSetFailureReleasesEarlierSnapshots(t *testing.T) {
	bt := loopfs.Btrfs(t, 0)
	xfs := loopfs.XFS(t, 0)
	mkSubvol(t, bt+"/data")
	write(t, xfs+"/data/f", "x")
	opts := Options{Providers: []Provider{Btrfs{}, failing{Reflink{}}, None{}}}
	_, err := NewSet(context.Background(), []Source{{bt + "/data", Required}, {xfs + "/data", Required}}, opts)
	if err == nil || !strings.Contains(err.Error(), "injected failure") || !strings.Contains(err.Error(), xfs+"/data") ||
		!strings.Contains(err.Error(), "released the 1 snapshot") {
		t.Fatalf("err = %v", err)
	}
	assertClean(t, bt, 1)
	assertClean(t, xfs, 0)

	// A cancelled context creates nothing either.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := NewSet(ctx, []Source{{bt + "/data", Required}}, Options{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	assertClean(t, bt, 1)
}

func TestDoctor(t *testing.T) {
	bt := loopfs.Btrfs(t, 0)
	ext := loopfs.Ext4(t, 0)
	mkSubvol(t, bt+"/data")
	write(t, bt+"/data/x/f", "")
	r, err := Doctor([]string{bt + "/data/x", ext})
	if err != nil {
		t.Fatal(err)
	}
	b, e := r.Paths[0], r.Paths[1]
	if b.FS.FSType != "btrfs" || b.FS.Mountpoint != bt || b.Subvolume == nil || b.Subvolume.Root != bt+"/data" || b.Subvolume.ID < 256 {
		t.Errorf("btrfs path: %s", dumpJSON(b))
	}
	if !b.Fits[0].OK || b.Fits[0].Consistency != Crash || !b.Fits[1].OK || b.Fits[1].Consistency != File {
		t.Errorf("btrfs fits: %s", dumpJSON(b.Fits))
	}
	if e.FS.FSType != "ext4" || !strings.HasPrefix(e.FS.Device, "/dev/loop") || e.Subvolume != nil || e.Fits[0].OK || e.Fits[1].OK || !e.Fits[2].OK {
		t.Errorf("ext4 path: %s", dumpJSON(e))
	}
	assertClean(t, bt, 1)
	assertClean(t, ext, 0)
}
