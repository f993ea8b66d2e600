package snapshot

import "time"

// Leftover is a snapshot or staging directory of a run, found on disk.
type Leftover struct {
	Path       string `json:"path"` // the labelled directory (<path>.json is its label)
	Kind       string `json:"kind"` // "btrfs" or "reflink"
	Mountpoint string `json:"mountpoint"`
	Label      Label  `json:"label"`
	// InUse: the owning process still runs (another backup); Cleanup
	// leaves it alone.
	InUse  bool   `json:"in_use"`
	Reason string `json:"reason"`
}

// Subvolume is the btrfs subvolume that holds a path.
type Subvolume struct {
	ID   uint64 `json:"id"`
	Root string `json:"root"`
}

// PathReport is what Doctor knows about one path.
type PathReport struct {
	Path      string     `json:"path"`
	Real      string     `json:"real,omitempty"`
	FS        FSInfo     `json:"filesystem"`
	Subvolume *Subvolume `json:"subvolume,omitempty"`
	Fits      []Fit      `json:"fits"`
	Error     string     `json:"error,omitempty"`
}

// DoctorReport is the answer of Doctor.
type DoctorReport struct {
	Paths     []PathReport `json:"paths"`
	Leftovers []Leftover   `json:"leftovers"`
	// VSS is what `vssadmin list writers` and `list shadows` would show
	// (Windows only).
	VSS *VSSReport `json:"vss,omitempty"`
}

// VSSReport is the state of Volume Shadow Copy on this system.
type VSSReport struct {
	Writers []VSSWriterInfo `json:"writers"`
	Shadows []VSSShadowInfo `json:"shadows"`
	// Providers are what `vssadmin list providers` shows, with the paths
	// asked about that each can snap.
	Providers []VSSProviderInfo `json:"providers"`
	// Error says why VSS could not be asked (not elevated, Wine).
	Error string `json:"error,omitempty"`
	// ProvidersError says why the providers could not be listed.
	ProvidersError string `json:"providers_error,omitempty"`
}

// VSSProviderInfo is one shadow copy provider and which of the paths
// asked about it fits.
type VSSProviderInfo struct {
	Name    string `json:"name"`
	ID      string `json:"id"`
	Type    string `json:"type"` // System, Software, Hardware, File share
	Version string `json:"version"`
	// Fits are the paths on volumes it can snap (IsVolumeSupported).
	Fits []string `json:"fits"`
	// DoesNotFit are the others, each with why.
	DoesNotFit []VSSNoFit `json:"does_not_fit,omitempty"`
}

// VSSNoFit is a path a provider cannot snap, and why.
type VSSNoFit struct {
	Path   string `json:"path"`
	Volume string `json:"volume,omitempty"`
	Reason string `json:"reason"`
}

// VSSWriterInfo is one writer and its state.
type VSSWriterInfo struct {
	Name      string `json:"name"`
	ID        string `json:"id"`
	Instance  string `json:"instance"`
	State     string `json:"state"`
	LastError string `json:"last_error,omitempty"`
}

// VSSShadowInfo is one shadow copy on the system.
type VSSShadowInfo struct {
	ID             string    `json:"id"`
	SetID          string    `json:"set_id"`
	Device         string    `json:"device"`
	OriginalVolume string    `json:"original_volume"`
	Created        time.Time `json:"created"`
}

// Doctor reports, per path, the filesystem, the subvolume (btrfs), which
// providers fit and how well, plus the leftovers on those filesystems (on
// all mounts when paths is empty). It changes nothing.
func Doctor(paths []string) (*DoctorReport, error) {
	r := &DoctorReport{Paths: []PathReport{}, Leftovers: []Leftover{}}
	for _, p := range paths {
		r.Paths = append(r.Paths, doctorPath(p))
	}
	los, err := FindLeftovers(paths)
	r.Leftovers = append(r.Leftovers, los...)
	r.VSS = vssDoctor(paths)
	return r, err
}

func doctorPath(p string) PathReport {
	pr := PathReport{Path: p}
	abs, err := absClean(p)
	if err != nil {
		pr.Error = err.Error()
		return pr
	}
	pr.Path = abs
	fs, err := filesystemOf(abs)
	if err != nil {
		pr.Error = err.Error()
		return pr
	}
	pr.FS = fs
	pr.Real, pr.Subvolume = subvolumeOf(abs, fs)
	for _, pv := range DefaultProviders() {
		fit, err := pv.Detect(abs)
		if err != nil {
			fit = Fit{Reason: err.Error()}
		}
		fit.Provider = pv.Name()
		pr.Fits = append(pr.Fits, fit)
	}
	return pr
}
