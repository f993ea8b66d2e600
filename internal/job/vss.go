package job

import (
	"fmt"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/stillpoint-backup/stillpoint/internal/vss"
)

// VSS tunes Volume Shadow Copies on Windows (the vss: key). Elsewhere it
// is read and checked but has no effect.
type VSS struct {
	// Require names VSS writers (by name or class id) that must be there
	// and must not fail; Exclude names writers left out of the backup.
	Require, Exclude []string
	// Provider is "" (Windows chooses), "microsoft" or a provider's GUID.
	Provider string
	// BackupType is "copy" ("" too: applications keep their logs)
	// or "full" (SQL Server and Exchange may truncate their logs after it).
	BackupType string
	// PhaseTimeout bounds each asynchronous VSS call, Timeout the whole
	// set with its retries; 0 means the requester's default.
	PhaseTimeout, Timeout time.Duration
	// Retries is how often a set that failed transiently is tried again;
	// nil means vss.DefaultRetries.
	Retries *int
}

// MaxVSSRetries bounds vss.retries.
const MaxVSSRetries = 10

// VSSBackupTypes are the values of vss.backup-type.
var VSSBackupTypes = []string{"copy", "full"}

var (
	vssKeys       = []string{"writers", "provider", "backup-type", "phase-timeout", "timeout", "retries"}
	vssWriterKeys = []string{"require", "exclude"}
)

func (p *parser) vss(n *yaml.Node) {
	f, ok := p.mapping(n, "vss", vssKeys, "write e.g. vss: {writers: {require: [SqlServerWriter]}, timeout: 10m}")
	if !ok {
		return
	}
	v := &p.job.VSS
	if w, ok := f["writers"]; ok {
		wf, ok := p.mapping(w.val, "vss.writers", vssWriterKeys, `write e.g. writers: {require: [SqlServerWriter], exclude: ["Registry Writer"]}`)
		if ok {
			const hint = `a list of VSS writer names or ids, as "vssadmin list writers" shows them, e.g. [SqlServerWriter]`
			if r, ok := wf["require"]; ok {
				v.Require = p.strList(r.val, "vss.writers.require", hint)
			}
			if x, ok := wf["exclude"]; ok {
				v.Exclude = p.strList(x.val, "vss.writers.exclude", hint)
			}
		}
	}
	if x, ok := f["provider"]; ok {
		v.Provider, _ = p.str(x.val, "vss.provider", `microsoft, or a provider id as "vssadmin list providers" shows it`)
	}
	if x, ok := f["backup-type"]; ok {
		v.BackupType, _ = p.oneOf(x.val, "vss.backup-type", VSSBackupTypes)
	}
	if x, ok := f["phase-timeout"]; ok {
		v.PhaseTimeout, _ = p.duration(x.val, "vss.phase-timeout")
	}
	if x, ok := f["timeout"]; ok {
		v.Timeout, _ = p.duration(x.val, "vss.timeout")
	}
	if x, ok := f["retries"]; ok {
		if n, ok := p.integer(x.val, "vss.retries", fmt.Sprintf("a number from 0 to %d", MaxVSSRetries)); ok {
			v.Retries = &n
		}
	}
}

func (v *validator) vss() {
	x := v.j.VSS
	if x.BackupType != "" && !contains(VSSBackupTypes, x.BackupType) {
		v.errorf("vss.backup-type", "one of "+strings.Join(VSSBackupTypes, ", "), "unknown value %q", x.BackupType)
	}
	if x.BackupType == "full" {
		v.warnf("vss.backup-type", "keep copy unless stillpoint is the backup of record of SQL Server or Exchange",
			"backup-type full lets SQL Server and Exchange truncate their logs after the backup, so their own backups lose the log chain")
	}
	if _, err := x.ProviderID(); err != nil {
		v.errorf("vss.provider", `write microsoft, or a provider id such as {b5946137-7b9f-4925-af80-51abd60b20d5} ("vssadmin list providers")`, "%v", err)
	}
	if x.Retries != nil && (*x.Retries < 0 || *x.Retries > MaxVSSRetries) {
		v.errorf("vss.retries", fmt.Sprintf("a number from 0 to %d", MaxVSSRetries), "%d retries of a whole snapshot set", *x.Retries)
	}
	if x.PhaseTimeout < 0 || x.Timeout < 0 {
		v.errorf("vss.timeout", durationHint, "VSS timeouts cannot be negative")
	}
	if x.PhaseTimeout > 0 && x.Timeout > 0 && x.PhaseTimeout > x.Timeout {
		v.errorf("vss.phase-timeout", fmt.Sprintf("lower phase-timeout, or raise timeout to at least %s", x.PhaseTimeout),
			"phase-timeout %s is longer than timeout %s, the limit for the whole set", x.PhaseTimeout, x.Timeout)
	}
	for _, list := range []struct {
		key   string
		names []string
	}{{"vss.writers.require", x.Require}, {"vss.writers.exclude", x.Exclude}} {
		for i, n := range list.names {
			if strings.TrimSpace(n) == "" {
				v.errorf(fmt.Sprintf("%s[%d]", list.key, i), `a writer name as "vssadmin list writers" shows it`, "the writer name is empty")
			}
		}
	}
	for i, r := range x.Require {
		for _, e := range x.Exclude {
			if strings.EqualFold(strings.TrimSpace(r), strings.TrimSpace(e)) {
				v.errorf(fmt.Sprintf("vss.writers.require[%d]", i), "keep it in one of the lists", "writer %q is both required and excluded", r)
			}
		}
	}
}

// ProviderID is the provider to ask for: zero lets Windows choose.
func (x VSS) ProviderID() (vss.GUID, error) {
	switch p := strings.TrimSpace(x.Provider); strings.ToLower(p) {
	case "", "system", "default":
		return vss.GUID{}, nil
	case "microsoft":
		return vss.MicrosoftProvider, nil
	default:
		g, err := vss.ParseGUID(p)
		if err != nil {
			return vss.GUID{}, fmt.Errorf("unknown provider %q: %w", x.Provider, err)
		}
		return g, nil
	}
}

// Options maps the job's vss: keys onto the requester's options; keys
// left out keep the requester's defaults.
func (x VSS) Options() (vss.Options, error) {
	o := vss.DefaultOptions()
	id, err := x.ProviderID()
	if err != nil {
		return o, err
	}
	o.Provider, o.PhaseTimeout, o.Timeout = id, x.PhaseTimeout, x.Timeout
	if x.Retries != nil {
		o.Retries = *x.Retries
	}
	o.Require, o.Exclude = x.Require, x.Exclude
	if x.BackupType == "full" {
		o.BackupType = vss.BackupFull
	}
	return o, nil
}
