package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/bufs"
)

// CheckOptions select how deep check goes.
type CheckOptions struct {
	// ReadData reads every pack, decrypts every blob and verifies its id.
	ReadData bool
	// Subset, when not zero, reads only the packs it selects (ReadData
	// need not be set).
	Subset ReadSubset
	// Rand picks the packs of a random subset; nil: seeded at random.
	Rand *rand.Rand
	// Progress is told about each phase; may be nil.
	Progress func(msg string)
}

// CheckProblem is one finding.
type CheckProblem struct {
	Object  string `json:"object"` // e.g. "pack 1a2b3c4d", "snapshot 9f8e7d6c"
	Message string `json:"message"`
}

// CheckResult is what check found. The repository is healthy when Errors
// is empty; Warnings (such as packs left by an interrupted backup) do not
// endanger any snapshot.
type CheckResult struct {
	Errors           []CheckProblem      `json:"errors"`
	Warnings         []CheckProblem      `json:"warnings"`
	DamagedSnapshots map[string][]string `json:"damaged_snapshots"` // snapshot id -> damaged paths (first few)
	Snapshots        int                 `json:"snapshots"`
	Packs            int                 `json:"packs"`
	Blobs            int                 `json:"blobs"`
	Trees            int                 `json:"trees"`
	ReadData         bool                `json:"read_data"`
	ReadSubset       string              `json:"read_subset,omitempty"` // "all", "1/5", "10%", "500M"
	PacksRead        int                 `json:"packs_read"`
	BytesRead        int64               `json:"bytes_read"`
}

// OK tells whether check found no error.
func (c *CheckResult) OK() bool { return len(c.Errors) == 0 }

func (c *CheckResult) errorf(obj, format string, args ...any) {
	c.Errors = append(c.Errors, CheckProblem{Object: obj, Message: fmt.Sprintf(format, args...)})
}

func (c *CheckResult) warnf(obj, format string, args ...any) {
	c.Warnings = append(c.Warnings, CheckProblem{Object: obj, Message: fmt.Sprintf(format, args...)})
}

const maxDamagedPaths = 20

// Check verifies the repository's structure: every index readable, every
// indexed pack present with the size the index says, every snapshot
// readable, every tree decodable and every blob a snapshot needs indexed in
// an intact pack. With ReadData it also reads and verifies every blob.
func (r *Repository) Check(ctx context.Context, opts CheckOptions) (*CheckResult, error) {
	reading := opts.ReadData || !opts.Subset.IsZero()
	res := &CheckResult{DamagedSnapshots: map[string][]string{}, ReadData: reading}
	say := func(s string) {
		if opts.Progress != nil {
			opts.Progress(s)
		}
	}
	say("loading index")
	// marks first: a pack a pending prune mark names may be gone or in no index
	badIdx, err := r.reloadView(ctx)
	if err != nil {
		return nil, err
	}
	for _, b := range badIdx {
		res.errorf("index "+shortName(b.Name), "cannot be read: %v", b.Err)
	}
	for _, b := range r.markProblems {
		res.errorf("mark "+shortName(b.Name), "cannot be read: %v (until it is removed, backups store everything again; `stillpoint prune` removes it)", b.Err)
	}

	say("listing packs")
	onDisk := map[ID]int64{}
	if err := r.be.List(ctx, backend.Packs, func(fi backend.FileInfo) error {
		id, err := ParseID(fi.Name)
		if err != nil {
			res.warnf("data/"+fi.Name, "not a pack name; ignored")
			return nil
		}
		onDisk[id] = fi.Size
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list packs: %w", err)
	}
	badPacks := map[ID]string{}
	indexed := r.index.Packs()
	for id, want := range indexed {
		got, ok := onDisk[id]
		switch {
		case !ok && r.index.IsMarked(id):
			// deleted by a prune's sweep while check ran
		case !ok:
			badPacks[id] = "missing"
			res.errorf("pack "+id.Short(), "is in the index but missing from the repository")
		case got != want:
			badPacks[id] = "truncated"
			res.errorf("pack "+id.Short(), "is %d bytes, the index says %d (truncated or damaged)", got, want)
		}
	}
	var unref int
	for id := range onDisk {
		if _, ok := indexed[id]; !ok && !r.index.IsMarked(id) {
			unref++
		}
	}
	if unref > 0 {
		res.warnf("packs", "%d packs are in no index (left by an interrupted backup, or their index is lost); their data is not used by any snapshot that check could read", unref)
	}
	res.Packs = len(onDisk)
	res.Blobs = r.index.Len()

	badBlobs := map[ID]string{}
	if reading {
		intact := make(map[ID]int64, len(onDisk))
		for id, size := range onDisk {
			if _, bad := badPacks[id]; !bad {
				intact[id] = size
			}
		}
		rnd := opts.Rand
		if rnd == nil {
			rnd = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
		}
		ids := opts.Subset.Select(intact, rnd)
		res.ReadSubset = opts.Subset.String()
		if opts.Subset.IsZero() {
			say("reading all data")
		} else {
			say(fmt.Sprintf("reading the data of subset %s: %d of %d packs", res.ReadSubset, len(ids), len(intact)))
		}
		r.readPacks(ctx, ids, onDisk, badBlobs, res)
	}

	say("checking snapshots")
	snaps, badSnaps, err := r.Snapshots(ctx)
	if err != nil {
		return nil, err
	}
	for _, b := range badSnaps {
		res.errorf("snapshot "+shortName(b.Name), "cannot be read: %v", b.Err)
	}
	// a backup beside check may have written its snapshot after the index
	// was loaded: its index files are durable before it, so loading those
	// written since makes every listed snapshot's blobs known (the packs
	// they add were written after the listing above, and are not judged)
	newIdx, err := r.LoadIndex(ctx)
	if err != nil {
		return nil, err
	}
	for _, b := range newIdx {
		res.errorf("index "+shortName(b.Name), "cannot be read: %v", b.Err)
	}
	res.Snapshots = len(snaps)
	blobOK := func(id ID) (string, bool) {
		if why, bad := badBlobs[id]; bad {
			return why, false
		}
		bi, ok := r.index.Lookup(id)
		if !ok {
			return "not in any index", false
		}
		if why, bad := badPacks[bi.Pack]; bad {
			return fmt.Sprintf("its pack %s is %s", bi.Pack.Short(), why), false
		}
		return "", true
	}
	treeSeen := map[ID]bool{}
	treeBad := map[ID]bool{}
	for _, s := range snaps {
		damaged := r.checkTree(ctx, "", s.Tree, blobOK, treeSeen, treeBad, res)
		if len(damaged) > 0 {
			res.DamagedSnapshots[s.ID.String()] = damaged
			res.errorf("snapshot "+s.ID.Short(), "is damaged: %d or more files or directories cannot be restored (first: %s)", len(damaged), damaged[0])
		}
	}
	res.Trees = len(treeSeen)
	sort.Slice(res.Errors, func(i, j int) bool { return res.Errors[i].Object < res.Errors[j].Object })
	return res, nil
}

func shortName(n string) string {
	if len(n) > 8 {
		return n[:8]
	}
	return n
}

// checkTree walks a tree and returns the damaged paths below it. A tree
// seen before is not walked again; if it was damaged, its path is returned.
func (r *Repository) checkTree(ctx context.Context, dir string, id ID, blobOK func(ID) (string, bool), seen, bad map[ID]bool, res *CheckResult) []string {
	if seen[id] {
		if bad[id] {
			return []string{dir + "/"}
		}
		return nil
	}
	seen[id] = true
	if why, ok := blobOK(id); !ok {
		bad[id] = true
		res.errorf("tree "+id.Short(), "directory %s/ cannot be read: %s", dir, why)
		return []string{dir + "/"}
	}
	t, err := r.LoadTree(ctx, id)
	if err != nil {
		bad[id] = true
		res.errorf("tree "+id.Short(), "directory %s/ cannot be read: %v", dir, err)
		return []string{dir + "/"}
	}
	var damaged []string
	for _, n := range t.Nodes {
		p := dir + "/" + n.Name
		if n.Type == NodeDir && !n.Subtree.IsNull() {
			damaged = append(damaged, r.checkTree(ctx, p, n.Subtree, blobOK, seen, bad, res)...)
		}
		// a file's content and the alternate data streams of any node
		for _, c := range n.DataBlobs() {
			if why, ok := blobOK(c); !ok {
				damaged = append(damaged, p)
				res.errorf("blob "+c.Short(), "needed by %s: %s", p, why)
				break
			}
		}
		if len(damaged) > maxDamagedPaths {
			damaged = damaged[:maxDamagedPaths]
		}
	}
	if len(damaged) > 0 {
		bad[id] = true
	}
	return damaged
}

// readPacks verifies the header of each pack of ids against the index and
// every blob's content against its id.
func (r *Repository) readPacks(ctx context.Context, ids []ID, onDisk map[ID]int64, badBlobs map[ID]string, res *CheckResult) {
	// how many blobs the index places in each pack; the blobs themselves are
	// found through each pack's header (a copy of the index per pack would
	// cost as much memory as the index)
	indexedIn := map[ID]int{}
	r.index.Each(func(bi BlobInfo) { indexedIn[bi.Pack]++ })
	var mu sync.Mutex
	work := make(chan ID)
	var wg sync.WaitGroup
	// more readers than cores, so one waits for the disk while the others
	// decrypt and hash
	for range runtime.GOMAXPROCS(0) + 1 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var pb packBufs
			for id := range work {
				problems, blobs := r.verifyPack(ctx, id, onDisk[id], indexedIn[id], &pb)
				mu.Lock()
				for _, p := range problems {
					res.errorf("pack "+id.Short(), "%s", p)
				}
				for b, why := range blobs {
					badBlobs[b] = why
				}
				mu.Unlock()
			}
		}()
	}
	for _, id := range ids {
		res.PacksRead++
		res.BytesRead += onDisk[id]
		work <- id
	}
	close(work)
	wg.Wait()
}

// packBufs are one reader's buffers, reused for every pack it verifies.
type packBufs struct{ pack, plain []byte }

// verifyPack reads a whole pack of size bytes and checks its header and
// every blob the index places in it (indexed of them).
func (r *Repository) verifyPack(ctx context.Context, id ID, size int64, indexed int, pb *packBufs) (problems []string, badBlobs map[ID]string) {
	badBlobs = map[ID]string{}
	pb.pack = bufs.Grow(pb.pack, int(size))
	data := pb.pack
	if err := r.be.LoadInto(ctx, backend.Handle{Kind: backend.Packs, Name: id.String()}, 0, data); err != nil {
		if backend.IsNotFound(err) && r.index.IsMarked(id) {
			return nil, nil // deleted by a prune's sweep since it was listed
		}
		return []string{fmt.Sprintf("cannot be read: %v", err)}, nil
	}
	var toVerify []BlobInfo
	entries, herr := r.packHeader(id, data)
	if herr != nil {
		problems = append(problems, herr.Error())
	} else {
		for _, e := range entries {
			bi, ok := r.index.Lookup(e.ID)
			if !ok || bi.Pack != id {
				continue // a copy the index does not use
			}
			if e.Offset != bi.Offset || e.Length != bi.Length {
				problems = append(problems, fmt.Sprintf("header and index disagree about blob %s", bi.ID.Short()))
			}
			toVerify = append(toVerify, bi)
		}
	}
	if herr != nil || len(toVerify) != indexed {
		if herr == nil {
			problems = append(problems, fmt.Sprintf("the index places %d blobs in this pack, its header lists %d of them", indexed, len(toVerify)))
		}
		// a damaged header must not hide damaged blobs: verify by the index's view
		toVerify = toVerify[:0]
		r.index.Each(func(bi BlobInfo) {
			if bi.Pack == id {
				toVerify = append(toVerify, bi)
			}
		})
	}
	pr := r.OpenPack(id)
	for _, bi := range toVerify {
		end := int64(bi.Offset) + int64(bi.Length)
		if end > int64(len(data)) {
			badBlobs[bi.ID] = "pack is truncated"
			continue
		}
		if _, err := pr.BlobInto(bi, data[bi.Offset:end], PlainBuf(&pb.plain, bi)); err != nil {
			var be *BlobError
			if errors.As(err, &be) {
				err = be.Err
			}
			badBlobs[bi.ID] = fmt.Sprintf("damaged in pack %s: %v", id.Short(), err)
			problems = append(problems, fmt.Sprintf("blob %s (%s) is damaged: %v", bi.ID.Short(), bi.Type, err))
		}
	}
	return problems, badBlobs
}

// packHeader reads the blob list a pack carries at its end.
func (r *Repository) packHeader(id ID, data []byte) ([]blobEntry, error) {
	if len(data) < packTrailerLen {
		return nil, fmt.Errorf("is too short to be a pack (%d bytes)", len(data))
	}
	hl, err := parsePackTrailer(data[len(data)-packTrailerLen:], int64(len(data)))
	if err != nil {
		return nil, err
	}
	start := int64(len(data)) - packTrailerLen - hl
	aead := r.key.fileCipher(kindPack, id)
	hdr, err := aead.Open(nil, headerNonce, data[start:int64(len(data))-packTrailerLen], []byte("header"))
	if err != nil {
		return nil, fmt.Errorf("header cannot be decrypted (damaged)")
	}
	entries, err := decodePackHeader(hdr)
	if err != nil {
		return nil, err
	}
	var sum uint64
	for _, e := range entries {
		sum += uint64(e.Length)
	}
	if sum != uint64(start) {
		return nil, fmt.Errorf("header lists %d bytes of blobs, the pack holds %d", sum, start)
	}
	return entries, nil
}

// ReadSubset selects the packs `check --read-data-subset` reads; the zero
// value selects every pack.
//
//   - N/M: the packs whose id's first byte modulo M is N-1 (restic's rule).
//     The id is the pack's file name, so a bucket is a set of data/xx
//     folders; 1/M … M/M together read every pack exactly once, and a
//     pack stays in its bucket however the repository grows.
//   - P%: that share of the packs (at least one), picked at random.
//   - SIZE: packs picked at random until their sizes add up to SIZE.
type ReadSubset struct {
	Bucket, Buckets int     // N/M, 1 <= N <= M <= 256
	Percent         float64 // P%, 0 < P <= 100
	Bytes           int64   // SIZE in bytes, > 0
	text            string  // as given
}

// MaxBuckets is the largest M of N/M: buckets go by one byte of the id.
const MaxBuckets = 256

// IsZero tells whether s selects every pack.
func (s ReadSubset) IsZero() bool { return s.Buckets == 0 && s.Percent == 0 && s.Bytes == 0 }

func (s ReadSubset) String() string {
	switch {
	case s.text != "":
		return s.text
	case s.Buckets > 0:
		return fmt.Sprintf("%d/%d", s.Bucket, s.Buckets)
	case s.Percent > 0:
		return strconv.FormatFloat(s.Percent, 'f', -1, 64) + "%"
	case s.Bytes > 0:
		return strconv.FormatInt(s.Bytes, 10)
	}
	return "all"
}

var (
	subsetBucket  = regexp.MustCompile(`^([0-9]+)/([0-9]+)$`)
	subsetPercent = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)%$`)
	subsetSize    = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)((?:[kKmMgGtT](?:i?[bB])?|[bB])?)$`)
)

// ParseReadSubset reads N/M, P% or SIZE (as ParseSize reads it: bytes, or
// with a unit K, M, G, T, powers of 1024).
func ParseReadSubset(text string) (ReadSubset, error) {
	t := strings.TrimSpace(text)
	s := ReadSubset{text: t}
	if m := subsetBucket.FindStringSubmatch(t); m != nil {
		n, err1 := strconv.Atoi(m[1])
		total, err2 := strconv.Atoi(m[2])
		if err1 != nil || err2 != nil || total < 1 || total > MaxBuckets || n < 1 || n > total {
			return ReadSubset{}, fmt.Errorf("%q: N/M needs 1 <= N <= M <= %d (e.g. 1/5 … 5/5 read every pack once over five runs)", text, MaxBuckets)
		}
		s.Bucket, s.Buckets = n, total
		return s, nil
	}
	if m := subsetPercent.FindStringSubmatch(t); m != nil {
		p, err := strconv.ParseFloat(m[1], 64)
		if err != nil || p <= 0 || p > 100 {
			return ReadSubset{}, fmt.Errorf("%q: a percentage must be more than 0%% and at most 100%%", text)
		}
		s.Percent = p
		return s, nil
	}
	if m := subsetSize.FindStringSubmatch(t); m != nil {
		num, err1 := strconv.ParseFloat(m[1], 64)
		unit, err2 := ParseSize("1" + m[2]) // the units prune's flags take
		n := num * float64(unit)
		if err1 != nil || err2 != nil || n < 1 || n >= math.MaxInt64 {
			return ReadSubset{}, fmt.Errorf("%q: a size must be at least 1 byte and below 8 EiB", text)
		}
		s.Bytes = int64(n)
		return s, nil
	}
	return ReadSubset{}, fmt.Errorf("%q: use N/M (e.g. 2/5), P%% (e.g. 10%% or 2.5%%) or a size (e.g. 500M, 2G)", text)
}

// Bucket is the bucket N (1-based) of M that the pack id falls in.
func Bucket(id ID, buckets int) int { return int(id[0])%buckets + 1 }

// Select returns the packs of the subset, sorted by id. rnd picks the
// packs of a random subset.
func (s ReadSubset) Select(packs map[ID]int64, rnd *rand.Rand) []ID {
	ids := make([]ID, 0, len(packs))
	for id := range packs {
		if s.Buckets == 0 || Bucket(id, s.Buckets) == s.Bucket {
			ids = append(ids, id)
		}
	}
	sortIDs(ids)
	if s.Percent == 0 && s.Bytes == 0 {
		return ids
	}
	rnd.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	n := 0
	if s.Percent > 0 {
		n = int(float64(len(ids)) * s.Percent / 100)
		if n == 0 && len(ids) > 0 {
			n = 1
		}
	} else {
		var sum int64
		for n < len(ids) && sum < s.Bytes {
			sum += packs[ids[n]]
			n++
		}
	}
	ids = ids[:n]
	sortIDs(ids)
	return ids
}

func sortIDs(ids []ID) {
	sort.Slice(ids, func(i, j int) bool { return bytes.Compare(ids[i][:], ids[j][:]) < 0 })
}
