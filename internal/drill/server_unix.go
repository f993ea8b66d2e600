//go:build unix

package drill

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// serverUser is the account a database server started on a restored data
// directory runs as. As root: the directory's owner (the restore kept the
// original owner), or the named fallback account when root owns it, with
// the directory given to it. Otherwise the caller, who owns the files.
type serverUser struct {
	uid, gid uint32
	name     string
	switched bool // runs as another user than the caller
}

func pickServerUser(dataDir, fallback string) (serverUser, error) {
	if os.Geteuid() != 0 {
		u := serverUser{uid: uint32(os.Getuid()), gid: uint32(os.Getgid())}
		if cur, err := user.Current(); err == nil {
			u.name = cur.Username
		}
		return u, nil
	}
	fi, err := os.Stat(dataDir)
	if err != nil {
		return serverUser{}, err
	}
	st := fi.Sys().(*syscall.Stat_t)
	u := serverUser{uid: st.Uid, gid: st.Gid, switched: true}
	if st.Uid == 0 {
		acc, err := user.Lookup(fallback)
		if err != nil {
			return serverUser{}, fmt.Errorf("the restored data directory belongs to root and there is no %s user to run the server as (it refuses root)", fallback)
		}
		uid, _ := strconv.ParseUint(acc.Uid, 10, 32)
		gid, _ := strconv.ParseUint(acc.Gid, 10, 32)
		u.uid, u.gid, u.name = uint32(uid), uint32(gid), fallback
		if err := chownTree(dataDir, u.uid, u.gid); err != nil {
			return serverUser{}, err
		}
	} else if acc, err := user.LookupId(strconv.Itoa(int(st.Uid))); err == nil {
		u.name = acc.Username
	} else {
		u.name = "uid " + strconv.Itoa(int(st.Uid))
	}
	return u, checkReachable(dataDir, u)
}

// apply makes cmd run as u.
func (u serverUser) apply(cmd *exec.Cmd) {
	if !u.switched {
		return
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Credential = &syscall.Credential{Uid: u.uid, Gid: u.gid}
}

// privateDir makes a directory for the server's socket and files, which
// only the server's user (and root) may enter: with trust authentication,
// whoever reaches the socket reaches the restored data. Its path is short,
// as socket paths must be.
func (u serverUser) privateDir(prefix string) (string, error) {
	d, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", err
	}
	if u.switched {
		if err := os.Chown(d, int(u.uid), int(u.gid)); err != nil {
			os.RemoveAll(d)
			return "", err
		}
	}
	return d, nil
}

// writeFileAs writes a file the server's user owns.
func (u serverUser) writeFileAs(path string, data []byte) error {
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return err
	}
	if u.switched {
		return os.Chown(path, int(u.uid), int(u.gid))
	}
	return nil
}

func chownTree(dir string, uid, gid uint32) error {
	return filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(uid), int(gid))
	})
}

// checkReachable tells whether u may walk down to dir, with the fix.
func checkReachable(dir string, u serverUser) error {
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		perm := fi.Mode().Perm()
		var ok bool
		switch {
		case st.Uid == u.uid:
			ok = perm&0o100 != 0
		case st.Gid == u.gid:
			ok = perm&0o010 != 0
		default:
			ok = perm&0o001 != 0
		}
		if !ok {
			return fmt.Errorf("the server's user %s cannot enter %s (mode %04o) to reach the restored data: choose a scratch directory others may enter, such as /var/tmp (--scratch or drill.scratch)", u.name, d, perm)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// stopServer asks the server to shut down with sig and kills its process
// group when it has not exited by the deadline (or ctx ended first).
func stopServer(cmd *exec.Cmd, exited <-chan struct{}, sig syscall.Signal) {
	select {
	case <-exited:
		return
	default:
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(serverStopWait):
		_ = killGroup(cmd)
		<-exited
	}
	_ = killGroup(cmd) // anything the server left behind
}

// serverStopWait is how long a server may take to shut down cleanly.
const serverStopWait = 30 * time.Second

var errServerExited = errors.New("the server exited")
