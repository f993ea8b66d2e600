package snapshot

import (
	"encoding/json"
	"os"
)

// writeLabel stores the label as dir/<name>.json, durably, before the
// labelled thing exists: whatever a kill leaves behind is always labelled.
func writeLabel(dir string, l Label) error {
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	p := dir + "/" + l.Name() + ".json"
	tmp := p + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

func readLabel(p string) (Label, error) {
	var l Label
	b, err := os.ReadFile(p)
	if err != nil {
		return l, err
	}
	err = json.Unmarshal(b, &l)
	return l, err
}
