package restore

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/winmeta"
)

func (rs *restorer) special(dst string, n *repo.Node) error {
	if n.Type == repo.NodeSymlink {
		return os.Symlink(n.LinkTarget, dst)
	}
	return fmt.Errorf("%s cannot be restored on windows", n.Type)
}

// setMeta restores, after the content: alternate data streams, creation
// and modification times, attributes (read-only only now that the content
// is written), and the security descriptor last, since a restored DACL may
// deny the restoring user what would follow. A node recorded on Unix gets
// the read-only attribute when its owner could not write it, its mtime,
// and a note for what Windows has no place for (xattrs, owner ids).
func (rs *restorer) setMeta(p string, n *repo.Node) error {
	dst := rs.dest(p)
	if n.Type == repo.NodeSymlink {
		return nil
	}
	var errs []error
	for _, s := range n.Streams {
		if err := rs.writeStream(dst, s); err != nil {
			errs = append(errs, fmt.Errorf("alternate data stream %s: %w", s.Name, err))
		}
	}
	var created time.Time
	if n.Created != 0 {
		created = time.Unix(0, n.Created)
	}
	if err := winmeta.SetTimes(dst, created, time.Unix(0, n.Mtime)); err != nil {
		errs = append(errs, fmt.Errorf("set times: %w", err))
	}
	attrs := n.Attrs
	if attrs == 0 { // recorded elsewhere
		attrs = winmeta.FromUnixMode(n.Mode, n.Type == repo.NodeDir)
		rs.foreign.noteUnixNode(p, n)
	}
	if err := winmeta.SetAttrs(dst, attrs); err != nil {
		errs = append(errs, fmt.Errorf("set attributes: %w", err))
	}
	if len(n.SD) > 0 {
		set, err := winmeta.SetSD(dst, n.SD, n.SDParts)
		switch {
		case err != nil && set != 0 && !rs.privileged:
			rs.foreign.add(winmeta.PartNames(n.SDParts&^set)+" of the security descriptor (not elevated: SeRestorePrivilege or SeSecurityPrivilege not held)", p)
		case err != nil:
			errs = append(errs, fmt.Errorf("security descriptor: %s set, %s not: %w (restore elevated, with SeRestorePrivilege, to set every part)",
				winmeta.PartNames(set), winmeta.PartNames(n.SDParts&^set), err))
		}
	}
	return errors.Join(errs...)
}

func (rs *restorer) writeStream(dst string, s repo.Stream) error {
	f, err := winmeta.CreateStream(dst, s.Name)
	if err != nil {
		return err
	}
	if err := rs.writeBlobs(f, s.Content); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// platformState is what a Windows restore knows of its process.
type platformState struct {
	// privileged: SeRestorePrivilege and SeSecurityPrivilege are held, so
	// owners and every part of a security descriptor can be set
	privileged bool
}

// platformStart enables SeRestorePrivilege (any owner, any file) and
// SeSecurityPrivilege (SACLs). Without them, the parts of security
// descriptors the user may not set are said in the note at the end, not
// as an error of every file.
func (rs *restorer) platformStart() {
	rs.privileged = true
	for _, priv := range []string{winmeta.RestorePrivilege, winmeta.SecurityPrivilege} {
		if held, err := winmeta.Enable(priv); err != nil || !held {
			rs.privileged = false
		}
	}
}

// writeBlobs writes the data blobs ids to w in order, each read from its
// pack and verified: how a stream's content is restored (streams are small
// as a rule, so they are read blob by blob rather than planned with the
// files' content).
func (rs *restorer) writeBlobs(w io.Writer, ids []repo.ID) error {
	for _, id := range ids {
		bi, ok := rs.r.LookupBlob(id)
		if !ok {
			return fmt.Errorf("blob %s is not in the index", id.Short())
		}
		pr := rs.r.OpenPack(bi.Pack)
		sealed, err := pr.ReadRange(rs.ctx, int64(bi.Offset), int64(bi.Length))
		if err != nil {
			return fmt.Errorf("pack %s cannot be read: %w", bi.Pack.Short(), err)
		}
		plain, err := pr.Blob(bi, sealed)
		if err != nil {
			return err
		}
		if _, err := w.Write(plain); err != nil {
			return err
		}
	}
	return nil
}

// noteUnixNode records what of a node recorded on Unix Windows cannot set.
func (f *foreignNotes) noteUnixNode(p string, n *repo.Node) {
	if len(n.Xattrs) > 0 {
		f.add("extended attributes", p)
	}
	if n.Mode&0o7000 != 0 {
		f.add("setuid, setgid and sticky bits", p)
	}
}
