package run

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/backend/metered"
	"github.com/stillpoint-backup/stillpoint/internal/backend/s3"
	"github.com/stillpoint-backup/stillpoint/internal/job"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

// Access says which repository to use and how to unlock it.
type Access struct {
	Repository   string // path or s3:… location; "" means the default location
	PasswordFile string
	KeyFile      string
	// S3 are the options of an S3 repository given as flags; an empty one
	// is taken from its STILLPOINT_S3_* variable.
	S3 S3Options
	// NoCache turns off the local cache of a remote repository
	// (--no-cache, or STILLPOINT_NO_CACHE set to anything but 0/false).
	NoCache bool
	// Meter, when set, counts the requests that reach the store of every
	// backend opened through this Access (cache.go).
	Meter *metered.Meter
}

// S3Options are the settings of an S3 repository beyond its location
// (README, S3), from flags or a job file's s3: section. Credentials come
// from the AWS variables or the shared credentials file, never from flags.
type S3Options struct {
	Region       string // else $STILLPOINT_S3_REGION, $AWS_REGION, $AWS_DEFAULT_REGION
	Addressing   string // auto, path or virtual; else $STILLPOINT_S3_ADDRESSING
	CACert       string // PEM file; else $STILLPOINT_S3_CACERT
	StorageClass string // of data packs; else $STILLPOINT_S3_STORAGE_CLASS
	// Profile of the shared credentials file; else $AWS_PROFILE. Given,
	// it is the only source of credentials (the AWS_* keys are not read).
	Profile string
	// ConditionalWrite: if-none-match or stat; else $STILLPOINT_S3_CONDITIONAL_WRITE.
	ConditionalWrite string
}

// UseJobS3 takes the S3 options that a.S3 leaves empty (the flags) from a
// job file's s3: section, which in turn wins over the environment.
func (a *Access) UseJobS3(j job.S3) {
	o := &a.S3
	for _, f := range []struct {
		dst *string
		job string
	}{
		{&o.Region, j.Region}, {&o.Addressing, j.Addressing}, {&o.CACert, j.CACert},
		{&o.StorageClass, j.StorageClass}, {&o.Profile, j.Profile}, {&o.ConditionalWrite, j.ConditionalWrite},
	} {
		if *f.dst == "" {
			*f.dst = f.job
		}
	}
}

// Environment variables read by stillpoint.
const (
	EnvRepository = "STILLPOINT_REPOSITORY"
	EnvPassword   = "STILLPOINT_PASSWORD"
	EnvKeyFile    = "STILLPOINT_KEY_FILE"
	EnvKeyDir     = "STILLPOINT_KEY_DIR"
)

// DefaultRepository is /var/lib/stillpoint/repo for root, else the XDG data
// directory.
func DefaultRepository() string {
	if os.Geteuid() == 0 {
		return "/var/lib/stillpoint/repo"
	}
	return filepath.Join(xdg("XDG_DATA_HOME", ".local/share"), "stillpoint", "repo")
}

// KeyDir is where generated key files are kept: /etc/stillpoint/keys for
// root, else the XDG config directory. A key file lives apart from the
// repository, so a copy of the repository alone reveals nothing.
func KeyDir() string {
	if d := os.Getenv(EnvKeyDir); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/etc/stillpoint/keys"
	}
	return filepath.Join(xdg("XDG_CONFIG_HOME", ".config"), "stillpoint", "keys")
}

func xdg(env, fallback string) string {
	if d := os.Getenv(env); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = "."
	}
	return filepath.Join(home, fallback)
}

// Location resolves the repository path.
func (a Access) Location() string {
	switch {
	case a.Repository != "":
		return a.Repository
	case os.Getenv(EnvRepository) != "":
		return os.Getenv(EnvRepository)
	}
	return DefaultRepository()
}

// Backend returns the storage for the location.
func (a Access) Backend() (backend.Backend, error) {
	loc := a.Location()
	if s3.IsLocation(loc) {
		return a.s3Backend(loc)
	}
	abs, err := filepath.Abs(loc)
	if err != nil {
		return nil, err
	}
	return a.metered(backend.NewLocal(abs)), nil
}

func (a Access) s3Backend(loc string) (backend.Backend, error) {
	l, err := s3.ParseLocation(loc)
	if err != nil {
		return nil, err
	}
	first := func(vals ...string) string {
		for _, v := range vals {
			if v != "" {
				return v
			}
		}
		return ""
	}
	o := s3.Options{
		Region:           first(a.S3.Region, os.Getenv(s3.EnvRegion), os.Getenv("AWS_REGION"), os.Getenv("AWS_DEFAULT_REGION")),
		Addressing:       s3.Addressing(first(a.S3.Addressing, os.Getenv(s3.EnvAddressing))),
		CACertFile:       first(a.S3.CACert, os.Getenv(s3.EnvCACert)),
		StorageClass:     first(a.S3.StorageClass, os.Getenv(s3.EnvStorageClass)),
		ConditionalWrite: s3.ConditionalWrite(first(a.S3.ConditionalWrite, os.Getenv(s3.EnvConditionalWrite))),
		Profile:          a.S3.Profile,
	}
	b, err := s3.New(l, o)
	if err != nil {
		return nil, fmt.Errorf("repository %s: %w", l, err)
	}
	// the meter right above the store, the cache above the policy: what is
	// counted reached the server, what the cache answers never queues
	cached, err := a.withCache(backend.WithPolicy(a.metered(b), backend.RemotePolicy()))
	if err != nil {
		return nil, err
	}
	return remoteRepo{Backend: cached, raw: b}, nil
}

// remoteRepo is an S3 backend behind the remote policy's retries, limits
// and deadlines, and the local cache.
type remoteRepo struct {
	backend.Backend
	raw *s3.Backend
}

// Forget implements backend.Forgetter (through to the cache).
func (r remoteRepo) Forget(h backend.Handle) { backend.Forget(r.Backend, h) }

// Create implements backend.Creator (through the policy).
func (r remoteRepo) Create(ctx context.Context) error {
	if c, ok := r.Backend.(backend.Creator); ok {
		return c.Create(ctx)
	}
	return r.raw.Create(ctx)
}

// IsEmpty tells whether the repository's prefix holds no object.
func (r remoteRepo) IsEmpty(ctx context.Context) (bool, error) { return r.raw.IsEmpty(ctx) }

// password returns the password from --password-file or the environment.
func (a Access) password() (string, error) {
	if a.PasswordFile != "" {
		data, err := os.ReadFile(a.PasswordFile)
		if err != nil {
			return "", fmt.Errorf("read password file: %w", err)
		}
		pw := strings.TrimRight(string(data), "\r\n")
		if pw == "" {
			return "", fmt.Errorf("password file %s is empty", a.PasswordFile)
		}
		return pw, nil
	}
	return os.Getenv(EnvPassword), nil
}

func (a Access) keyFilePath(repoID string) (path string, explicit bool) {
	if a.KeyFile != "" {
		return a.KeyFile, true
	}
	if p := os.Getenv(EnvKeyFile); p != "" {
		return p, true
	}
	return filepath.Join(KeyDir(), repoID+".key"), false
}

// Open opens an existing repository.
func Open(ctx context.Context, a Access) (*repo.Repository, error) {
	be, err := a.Backend()
	if err != nil {
		return nil, err
	}
	cfg, err := repo.ReadConfig(ctx, be)
	if err != nil {
		return nil, err
	}
	return a.open(ctx, be, cfg, repo.OpenOptions{})
}

// open opens the repository whose config was read, with the credential
// that opens it.
func (a Access) open(ctx context.Context, be backend.Backend, cfg *repo.Config, o repo.OpenOptions) (*repo.Repository, error) {
	cred, err := a.credential(cfg.ID)
	if err != nil {
		return nil, err
	}
	o.Config = cfg
	return repo.OpenWith(ctx, be, cred, o)
}

// existing finds an existing repository's storage and the credential
// that opens it.
func (a Access) existing(ctx context.Context) (backend.Backend, repo.Credential, error) {
	be, err := a.Backend()
	if err != nil {
		return nil, repo.Credential{}, err
	}
	cfg, err := repo.ReadConfig(ctx, be)
	if err != nil {
		return nil, repo.Credential{}, err
	}
	cred, err := a.credential(cfg.ID)
	if err != nil {
		return nil, repo.Credential{}, err
	}
	return be, cred, nil
}

func (a Access) credential(repoID string) (repo.Credential, error) {
	pw, err := a.password()
	if err != nil {
		return repo.Credential{}, err
	}
	if pw != "" {
		return repo.Credential{Password: pw}, nil
	}
	path, explicit := a.keyFilePath(repoID)
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && !explicit {
			return repo.Credential{}, fmt.Errorf("repository %s needs its key: no key file at %s; give --key-file, --password-file or %s", a.Location(), path, EnvPassword)
		}
		return repo.Credential{}, fmt.Errorf("read key file: %w", err)
	}
	secret, err := repo.DecodeKeyFile(data)
	if err != nil {
		return repo.Credential{}, fmt.Errorf("%s: %w", path, err)
	}
	return repo.Credential{KeyFile: secret}, nil
}

// Created tells the user what a first run made.
type Created struct {
	Repository string
	KeyFile    string // "" when a password was used
}

// Create makes a repository: with the password when one is given, else
// with a new key file (mode 0600) in KeyDir or at --key-file.
func Create(ctx context.Context, a Access, cfg repo.Config) (*repo.Repository, *Created, error) {
	be, err := a.Backend()
	if err != nil {
		return nil, nil, err
	}
	if ok, err := repo.Exists(ctx, be); err != nil {
		return nil, nil, err
	} else if ok {
		return nil, nil, fmt.Errorf("%s already holds a repository", be.Location())
	}
	return a.create(ctx, be, cfg)
}

// create makes a repository in be, which holds none.
func (a Access) create(ctx context.Context, be backend.Backend, cfg repo.Config) (*repo.Repository, *Created, error) {
	pw, err := a.password()
	if err != nil {
		return nil, nil, err
	}
	created := &Created{Repository: be.Location()}
	var cred repo.Credential
	var secret []byte
	if pw != "" {
		cred.Password = pw
	} else {
		secret = repo.NewKeyFileSecret()
		cred.KeyFile = secret
	}
	r, err := repo.Init(ctx, be, cred, cfg)
	if err != nil {
		return nil, nil, err
	}
	if secret != nil {
		path, _ := a.keyFilePath(r.Config().ID)
		if err := writeKeyFile(path, repo.EncodeKeyFile(r.Config().ID, secret)); err != nil {
			return nil, nil, fmt.Errorf("repository created at %s, but its key could not be saved: %w", be.Location(), err)
		}
		created.KeyFile = path
	}
	return r, created, nil
}

func writeKeyFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// OpenOrCreate opens the repository, creating it first when its location
// does not exist yet or is an empty directory. The repository's view (its
// prune marks and index) is read by the Lock that the caller must take
// before it reads or writes a blob, as a backup does (repo.OpenOptions).
// Reading the config is the only question asked to learn whether there
// is a repository: it is read anyway.
func OpenOrCreate(ctx context.Context, a Access) (*repo.Repository, *Created, error) {
	be, err := a.Backend()
	if err != nil {
		return nil, nil, err
	}
	cfg, err := repo.ReadConfig(ctx, be)
	if err == nil {
		r, err := a.open(ctx, be, cfg, repo.OpenOptions{ViewAtLock: true})
		return r, nil, err
	}
	if !errors.Is(err, repo.ErrNoRepository) {
		return nil, nil, err
	}
	if e, ok := be.(interface {
		IsEmpty(ctx context.Context) (bool, error)
	}); ok {
		empty, err := e.IsEmpty(ctx)
		if err != nil {
			return nil, nil, err
		}
		if !empty {
			return nil, nil, fmt.Errorf("%s is not empty and holds no stillpoint repository; choose another --repo", be.Location())
		}
		return a.create(ctx, be, repo.DefaultConfig)
	}
	entries, err := os.ReadDir(be.Location())
	if err == nil && len(entries) > 0 && !onlyEmptyDirs(be.Location(), entries) {
		return nil, nil, fmt.Errorf("%s is not empty and holds no stillpoint repository; choose another --repo", be.Location())
	}
	return a.create(ctx, be, repo.DefaultConfig)
}

// CacheDir holds run logs, the default staging directory and the copies
// of remote repositories' files: --cache-dir (SetCacheDir), else
// $STILLPOINT_CACHE_DIR, else /var/cache/stillpoint as root, else the XDG
// cache directory.
func CacheDir() string {
	if cacheDirFlag != "" {
		return cacheDirFlag
	}
	if d := os.Getenv("STILLPOINT_CACHE_DIR"); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/var/cache/stillpoint"
	}
	return filepath.Join(xdg("XDG_CACHE_HOME", ".cache"), "stillpoint")
}

// onlyEmptyDirs tells whether every entry is an empty directory: what a
// first backup interrupted while it created the repository leaves (the
// folders, no config yet), so creating it again is safe.
func onlyEmptyDirs(dir string, entries []os.DirEntry) bool {
	for _, e := range entries {
		if !e.IsDir() {
			return false
		}
		sub, err := os.ReadDir(filepath.Join(dir, e.Name()))
		if err != nil || len(sub) > 0 {
			return false
		}
	}
	return true
}
