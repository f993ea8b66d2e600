package livefile

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// BenchmarkScanOpenForWrite measures one scan of /proc. With
// LIVEFILE_BENCH_PROCS=N it first starts N sleeping processes, each holding
// a file open for writing (fd 3) besides its three standard descriptors,
// so the cost on a busy machine can be measured (see the package doc).
func BenchmarkScanOpenForWrite(b *testing.B) {
	if n, _ := strconv.Atoi(os.Getenv("LIVEFILE_BENCH_PROCS")); n > 0 {
		startSleepers(b, n)
	}
	procs, fds := countProc()
	var found int
	b.ResetTimer()
	for b.Loop() {
		of, err := ScanOpenForWrite()
		if err != nil {
			b.Fatal(err)
		}
		found = of.Len()
	}
	b.ReportMetric(float64(procs), "procs")
	b.ReportMetric(float64(fds), "fds")
	b.ReportMetric(float64(found), "open-files")
}

func startSleepers(b *testing.B, n int) {
	dir := b.TempDir()
	cmds := make([]*exec.Cmd, 0, n)
	b.Cleanup(func() {
		for _, c := range cmds {
			c.Process.Kill() // our own children, by pid
			c.Wait()
		}
	})
	for i := range n {
		f, err := os.Create(filepath.Join(dir, fmt.Sprint(i)))
		if err != nil {
			b.Fatal(err)
		}
		c := exec.Command("sleep", "600")
		c.ExtraFiles = []*os.File{f}
		if err := c.Start(); err != nil {
			f.Close()
			b.Fatalf("starting sleeper %d: %v", i, err)
		}
		f.Close()
		cmds = append(cmds, c)
	}
}

// countProc counts the processes and descriptors a scan walks.
func countProc() (procs, fds int) {
	names, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range names {
		if ents, err := os.ReadDir(p + "/fd"); err == nil {
			procs++
			fds += len(ents)
		}
	}
	return procs, fds
}
