package inspect

import (
	"context"
	"encoding/json"

	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

// SizeStats is what a restore of the snapshots would write, summed over
// them (a file in two snapshots counts twice: two restores write it twice).
type SizeStats struct {
	Snapshots int   `json:"snapshots"`
	Files     int64 `json:"files"`  // regular files a restore writes
	Dirs      int64 `json:"dirs"`   // directories, the root of each snapshot not counted
	Others    int64 `json:"others"` // symlinks, devices, fifos, sockets
	// Bytes is the size of the files; a file with several hard links in
	// one snapshot counts once, as a restore writes it once.
	Bytes int64 `json:"bytes"`
	// NotWhole are the files among Files whose stored content is not a
	// state they had (changed while read, or an older version kept).
	NotWhole      int64 `json:"not_whole"`
	NotWholeBytes int64 `json:"not_whole_bytes"`
	// NotStored are files recorded without content (failed or skipped
	// before any version was stored): a restore skips them.
	NotStored int64 `json:"not_stored"`
	// Outcomes counts the files (written or not) by outcome.
	Outcomes Outcomes `json:"outcomes"`
}

// Outcomes counts files by outcome.
type Outcomes [8]int64

// MarshalJSON writes the non-zero counts by name.
func (o Outcomes) MarshalJSON() ([]byte, error) {
	m := map[string]int64{}
	for _, oc := range outcome.All() {
		if o[oc] != 0 {
			m[oc.String()] = o[oc]
		}
	}
	return json.Marshal(m)
}

// sizeAcc sums one subtree.
type sizeAcc struct {
	files, dirs, others, bytes, notWhole, notWholeBytes, notStored int64
	outcomes                                                       Outcomes
	// hardLinks: the subtree holds a file with several links, whose bytes
	// count once per snapshot, so its sums depend on what else the
	// snapshot holds and cannot be reused
	hardLinks bool
}

func (a *sizeAcc) add(b *sizeAcc) {
	a.files += b.files
	a.dirs += b.dirs
	a.others += b.others
	a.bytes += b.bytes
	a.notWhole += b.notWhole
	a.notWholeBytes += b.notWholeBytes
	a.notStored += b.notStored
	for i := range a.outcomes {
		a.outcomes[i] += b.outcomes[i]
	}
	a.hardLinks = a.hardLinks || b.hardLinks
}

// notStored tells whether a restore skips n: it was not backed up and no
// earlier version was kept. (The rule restore applies.)
func notStored(n *repo.Node) bool {
	return (n.Outcome == outcome.Failed || n.Outcome == outcome.SkippedOpen) && len(n.Content) == 0 && n.Size == 0
}

// RestoreSize counts what restoring each snapshot would write. A subtree
// that several snapshots share is read once: its sums are reused.
func RestoreSize(ctx context.Context, t Trees, snaps []*repo.Snapshot) (*SizeStats, error) {
	w := NewWalker(t)
	memo := map[repo.ID]*sizeAcc{}
	var total sizeAcc
	for _, s := range snaps {
		var (
			stack    = []*sizeAcc{{}}
			reused   = map[*repo.Node]*sizeAcc{}
			links    = map[[2]uint64]bool{}
			descends = map[*repo.Node]bool{}
		)
		err := w.Walk(ctx, "/", s.Tree, Visitor{
			Descend: func(_ string, n *repo.Node) bool {
				if m, ok := memo[n.Subtree]; ok {
					reused[n] = m
					return false
				}
				descends[n] = true
				return true
			},
			Node: func(_ string, n *repo.Node) error {
				top := stack[len(stack)-1]
				switch n.Type {
				case repo.NodeDir:
					top.dirs++
					if m := reused[n]; m != nil {
						top.add(m)
						delete(reused, n)
					} else if descends[n] {
						stack = append(stack, &sizeAcc{})
					}
				case repo.NodeFile:
					top.outcomes[n.Outcome&7]++
					if notStored(n) {
						top.notStored++
						return nil
					}
					top.files++
					size := int64(n.Size)
					if n.Links > 1 {
						top.hardLinks = true
						key := [2]uint64{n.Device, n.Inode}
						if links[key] {
							size = 0
						}
						links[key] = true
					}
					top.bytes += size
					if !n.Outcome.Whole() {
						top.notWhole++
						top.notWholeBytes += size
					}
				default:
					top.others++
				}
				return nil
			},
			Leave: func(_ string, n *repo.Node) error {
				sub := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				if !sub.hardLinks {
					memo[n.Subtree] = sub
				}
				delete(descends, n)
				stack[len(stack)-1].add(sub)
				return nil
			},
		})
		if err != nil {
			return nil, err
		}
		total.add(stack[0])
	}
	return &SizeStats{
		Snapshots: len(snaps), Files: total.files, Dirs: total.dirs, Others: total.others, Bytes: total.bytes,
		NotWhole: total.notWhole, NotWholeBytes: total.notWholeBytes, NotStored: total.notStored, Outcomes: total.outcomes,
	}, nil
}

// Blobs is what the raw-data count needs of a repository.
type Blobs interface {
	Trees
	LookupBlob(id repo.ID) (repo.BlobInfo, bool)
}

// RawStats is what the repository stores for the snapshots: every blob
// they reference (content and trees), each counted once however many
// files and snapshots share it.
type RawStats struct {
	Snapshots   int   `json:"snapshots"`
	Blobs       int64 `json:"blobs"`
	DataBlobs   int64 `json:"data_blobs"`
	TreeBlobs   int64 `json:"tree_blobs"`
	RawBytes    int64 `json:"uncompressed_bytes"` // plaintext
	StoredBytes int64 `json:"stored_bytes"`       // compressed and sealed, as in the packs
	// Missing are referenced blobs the index does not know (damage:
	// `check` names it); they are not in the sums.
	Missing int64 `json:"missing"`
}

// Ratio is the compression ratio (uncompressed / stored), 0 when nothing is stored.
func (s *RawStats) Ratio() float64 {
	if s.StoredBytes == 0 {
		return 0
	}
	return float64(s.RawBytes) / float64(s.StoredBytes)
}

// RawData counts the blobs the snapshots reference, once each.
func RawData(ctx context.Context, r Blobs, snaps []*repo.Snapshot) (*RawStats, error) {
	st := &RawStats{Snapshots: len(snaps)}
	seen := map[repo.ID]struct{}{}
	count := func(id repo.ID, tree bool) bool {
		if _, ok := seen[id]; ok {
			return false
		}
		seen[id] = struct{}{}
		bi, ok := r.LookupBlob(id)
		if !ok {
			st.Missing++
			return true
		}
		st.Blobs++
		if tree {
			st.TreeBlobs++
		} else {
			st.DataBlobs++
		}
		st.RawBytes += int64(bi.RawLen)
		st.StoredBytes += int64(bi.Length)
		return true
	}
	w := NewWalker(r)
	for _, s := range snaps {
		if !count(s.Tree, true) {
			continue // the same tree as an earlier snapshot
		}
		err := w.Walk(ctx, "/", s.Tree, Visitor{
			// a tree seen before is counted with everything below it
			Descend: func(_ string, n *repo.Node) bool { return count(n.Subtree, true) },
			Node: func(_ string, n *repo.Node) error {
				for _, id := range n.DataBlobs() {
					count(id, false)
				}
				return nil
			},
		})
		if err != nil {
			return nil, err
		}
	}
	return st, nil
}
