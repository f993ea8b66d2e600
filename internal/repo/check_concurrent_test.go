package repo

import (
	"math/rand/v2"
	"testing"
)

// TestCheckBesideABackup: a backup that writes its index and snapshot
// while check runs, after check loaded the index, is no damage: check
// reads the index files written since it listed the snapshots. (Before,
// check took such a snapshot's new trees for missing.)
func TestCheckBesideABackup(t *testing.T) {
	be, cred := newPruneRepo(t)
	rng := rand.New(rand.NewPCG(61, 62))
	backupOnce(t, be, cred, randomFiles(rng, 5, 64<<10), nil)
	r := openRepo(t, be, cred)
	var late *Snapshot
	res, err := r.Check(bg, CheckOptions{ReadData: true, Progress: func(msg string) {
		if msg == "checking snapshots" && late == nil {
			late = backupOnce(t, be, cred, randomFiles(rng, 5, 64<<10), nil)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if late == nil {
		t.Fatal("the backup beside check did not run")
	}
	if !res.OK() || res.Snapshots != 2 {
		t.Fatalf("check beside a backup: %d snapshots, errors %v", res.Snapshots, res.Errors)
	}
}
