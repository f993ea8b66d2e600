package repo

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
)

func TestTagChangeApply(t *testing.T) {
	for _, c := range []struct {
		change TagChange
		tags   []string
		want   []string
		same   bool
	}{
		{TagChange{Add: []string{"b"}}, []string{"a"}, []string{"a", "b"}, false},
		{TagChange{Add: []string{"a"}}, []string{"a"}, []string{"a"}, true},
		{TagChange{Remove: []string{"a"}, Add: []string{"c"}}, []string{"a", "b"}, []string{"b", "c"}, false},
		{TagChange{Remove: []string{"x"}}, []string{"a"}, []string{"a"}, true},
		{TagChange{Replace: true, Set: []string{"z"}}, []string{"a", "b"}, []string{"z"}, false},
		{TagChange{Replace: true}, []string{"a"}, nil, false},
		{TagChange{Replace: true}, nil, nil, true},
	} {
		got, changed := c.change.Apply(c.tags)
		if !slices.Equal(got, c.want) || changed == c.same {
			t.Errorf("%+v on %q: %q changed=%v, want %q changed=%v", c.change, c.tags, got, changed, c.want, !c.same)
		}
	}
	if got := SplitTags([]string{"a,b", " c ,", "a", ""}); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("SplitTags: %q", got)
	}
	if (TagChange{Replace: true, Add: []string{"a"}}).Validate() == nil || (TagChange{}).Validate() == nil {
		t.Error("a contradictory or empty change was accepted")
	}
}

func TestTagRewritesTheManifest(t *testing.T) {
	ctx := context.Background()
	be := backend.NewMem()
	r, err := Init(ctx, be, Credential{KeyFile: NewKeyFileSecret()}, DefaultConfig)
	if err != nil {
		t.Fatal(err)
	}
	tree, err := r.SaveTree(ctx, &Tree{})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// a manifest with a field this version does not know: tag keeps it
	first := NewRandomID()
	plain := `{"time":"2026-01-02T03:04:05+01:00","host":"h","paths":["/x"],"tags":["a"],"tree":"` + tree.String() + `","program":"p","stats":{},"outcomes":{"ok":1},"partial":false,"future_field":{"k":[1,2]}}`
	if err := be.Save(ctx, backend.Handle{Kind: backend.Snapshots, Name: first.String()}, r.key.sealFile(kindSnapshot, first, []byte(plain))); err != nil {
		t.Fatal(err)
	}
	s, err := r.LoadSnapshot(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	ns, changed, err := r.Tag(ctx, s, TagChange{Add: []string{"keep"}})
	if err != nil || !changed {
		t.Fatalf("tag: %v changed=%v", err, changed)
	}
	if ns.ID == first || !slices.Equal(ns.Tags, []string{"a", "keep"}) || ns.Original == nil || *ns.Original != first ||
		ns.Tree != tree || ns.Host != "h" || !ns.Time.Equal(s.Time) || ns.Time.Format("-07:00") != "+01:00" || ns.Outcomes["ok"] != 1 {
		t.Fatalf("rewritten manifest: %+v", ns)
	}
	snaps, _, _ := r.Snapshots(ctx)
	if len(snaps) != 1 || snaps[0].ID != ns.ID {
		t.Fatalf("snapshots after tag: %d, want only the new one", len(snaps))
	}
	raw, _ := backend.ReadAll(ctx, be, backend.Handle{Kind: backend.Snapshots, Name: ns.ID.String()})
	p, err := r.key.openFile(kindSnapshot, ns.ID, raw)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(p, &m); err != nil || string(m["future_field"]) != `{"k":[1,2]}` {
		t.Fatalf("unknown field not kept: %s", p)
	}

	// a second change keeps the first id as the original
	ns2, changed, err := r.Tag(ctx, ns, TagChange{Replace: true})
	if err != nil || !changed || len(ns2.Tags) != 0 || *ns2.Original != first {
		t.Fatalf("second tag: %v changed=%v %+v", err, changed, ns2)
	}
	// a change that changes nothing writes nothing
	same, changed, err := r.Tag(ctx, ns2, TagChange{Remove: []string{"zzz"}})
	if err != nil || changed || same.ID != ns2.ID {
		t.Fatalf("no-op tag: %v changed=%v", err, changed)
	}
	// a snapshot that is gone (forgotten meanwhile) is not brought back
	if err := be.Remove(ctx, backend.Handle{Kind: backend.Snapshots, Name: ns2.ID.String()}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Tag(ctx, ns2, TagChange{Add: []string{"x"}}); !errors.Is(err, ErrSnapshotGone) {
		t.Fatalf("tag of a removed snapshot: %v", err)
	}
	if snaps, _, _ := r.Snapshots(ctx); len(snaps) != 0 {
		t.Fatalf("%d snapshots after tagging a removed one", len(snaps))
	}
}
