package snapshot

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The test binary doubles as helper processes (a real writer, a run that
// gets killed), selected by this environment variable.
const helperEnv = "STILLPOINT_SNAPTEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "writer":
		size, _ := strconv.Atoi(os.Getenv("STATE_SIZE"))
		writer(os.Getenv("FILE"), os.Getenv("PROGRESS"), size)
	case "holdset":
		holdSet()
	}
	os.Exit(2)
}

// writer rewrites path forever with whole states, each in one pwrite, while
// holding an exclusive lock: the file is open for writing, locked and
// changing for the whole test. After each pwrite returns it records the
// seq in the progress file (elsewhere), so a reader of progress knows which
// writes completed; the page cache of path shows writes still in flight.
func writer(path, progress string, size int) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	pf, err := os.OpenFile(progress, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	var pb [8]byte
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		fmt.Println("error:", err)
		return
	}
	buf := make([]byte, size)
	rng := rand.New(rand.NewSource(int64(os.Getpid())))
	for seq := uint64(1); ; seq++ {
		fillState(buf, seq, rng)
		if _, err := f.WriteAt(buf, 0); err != nil {
			fmt.Println("error:", err)
			return
		}
		binary.LittleEndian.PutUint64(pb[:], seq)
		if _, err := pf.WriteAt(pb[:], 0); err != nil {
			fmt.Println("error:", err)
			return
		}
		if seq == 1 {
			fmt.Println("ready")
		}
	}
}

// A state is seq (8 bytes), random payload, sha256 of both (32 bytes).
func fillState(buf []byte, seq uint64, rng *rand.Rand) {
	binary.LittleEndian.PutUint64(buf, seq)
	rng.Read(buf[8 : len(buf)-32])
	sum := sha256.Sum256(buf[:len(buf)-32])
	copy(buf[len(buf)-32:], sum[:])
}

// checkState returns the seq of a whole state, or an error for a torn one.
func checkState(b []byte, size int) (uint64, error) {
	if len(b) != size {
		return 0, fmt.Errorf("state has %d bytes, want %d", len(b), size)
	}
	sum := sha256.Sum256(b[:size-32])
	if string(sum[:]) != string(b[size-32:]) {
		return 0, fmt.Errorf("torn state (checksum mismatch, seq field %d)", binary.LittleEndian.Uint64(b))
	}
	return binary.LittleEndian.Uint64(b), nil
}

// startWriter starts a writer process on path, waits until it wrote once
// and returns a function that reads the seq of its last completed write.
func startWriter(t *testing.T, path string, size int) (done func() uint64) {
	t.Helper()
	progress := filepath.Join(t.TempDir(), "progress")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=writer", "FILE="+path, "PROGRESS="+progress, "STATE_SIZE="+strconv.Itoa(size))
	waitReady(t, cmd)
	return func() uint64 {
		b, err := os.ReadFile(progress)
		if err != nil || len(b) != 8 {
			t.Fatalf("reading writer progress: %v (%d bytes)", err, len(b))
		}
		return binary.LittleEndian.Uint64(b)
	}
}

// holdSet makes a set of the sources in SOURCES (policy required), clones
// CLONE if set, says ready and waits to be killed.
func holdSet() {
	var srcs []Source
	for _, p := range strings.Split(os.Getenv("SOURCES"), ",") {
		srcs = append(srcs, Source{Path: p, Policy: Required})
	}
	s, err := NewSet(context.Background(), srcs, Options{RunID: "killed"})
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	if c := os.Getenv("CLONE"); c != "" {
		if err := s.Clone(c); err != nil {
			fmt.Println("error:", err)
			return
		}
	}
	fmt.Println("ready")
	time.Sleep(time.Hour)
}

// waitReady starts cmd, waits for "ready" on its stdout, and kills it
// (SIGKILL) and reaps it at cleanup.
func waitReady(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		t.Fatalf("helper: %q %v", line, err)
	}
}

// mkSubvol creates a btrfs subvolume with BTRFS_IOC_SUBVOL_CREATE.
func mkSubvol(t *testing.T, path string) {
	t.Helper()
	fd, err := unix.Open(filepath.Dir(path), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var a volArgs
	copy(a.name[:], filepath.Base(path))
	if err := ioctl(fd, 0x5000940e, unsafe.Pointer(&a)); err != nil { // _IOW(0x94, 14, vol_args)
		t.Fatalf("creating subvolume %s: %v", path, err)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// assertClean fails when anything of ours is left on the filesystem: no
// container directory, and (btrfs) no subvolumes beyond the test's own.
func assertClean(t *testing.T, mnt string, userSubvols int) {
	t.Helper()
	for _, d := range []string{SnapshotDir, StagingDir} {
		if ents, err := os.ReadDir(filepath.Join(mnt, d)); err == nil {
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Errorf("%s/%s left behind, holding %v", mnt, d, names)
		}
	}
	if subs := allSubvolIDs(t, mnt); len(subs) != userSubvols {
		t.Errorf("%s has subvolumes %v, want only the test's %d", mnt, subs, userSubvols)
	}
}

// allSubvolIDs lists every subvolume of a btrfs filesystem below the top
// level (nil for other filesystems).
func allSubvolIDs(t *testing.T, mnt string) []uint64 {
	t.Helper()
	var st unix.Statfs_t
	if unix.Statfs(mnt, &st) != nil || st.Type != unix.BTRFS_SUPER_MAGIC {
		return nil
	}
	fd, err := unix.Open(mnt, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var out []uint64
	var walk func(id uint64)
	walk = func(id uint64) {
		kids, err := childSubvols(fd, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range kids {
			out = append(out, k.id)
			walk(k.id)
		}
	}
	walk(5)
	return out
}

func readAll(t *testing.T, s *Set, p string) []byte {
	t.Helper()
	f, err := s.View().Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b []byte
	buf := make([]byte, 64<<10)
	for {
		n, err := f.Read(buf)
		b = append(b, buf[:n]...)
		if err != nil {
			break
		}
	}
	return b
}

func dumpJSON(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}
