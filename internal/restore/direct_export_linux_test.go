package restore

import "golang.org/x/sys/unix"

// RefuseDirectIO makes every request for O_DIRECT fail as a file system
// without direct I/O refuses it, until the returned function is called;
// refused counts the requests.
func RefuseDirectIO(refused *int) func() {
	orig := setFlags
	setFlags = func(fd, flags int) error {
		if flags&unix.O_DIRECT != 0 {
			*refused++
			return unix.EINVAL
		}
		return orig(fd, flags)
	}
	return func() { setFlags = orig }
}

// KeepEdges makes a file's writers write its edges once n bytes of them are
// kept, until the returned function is called.
func KeepEdges(n int) func() {
	orig := edgesKept
	edgesKept = n
	return func() { edgesKept = orig }
}
