package run

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

// Environment variables that name the repository `copy` reads from.
const (
	EnvFromRepository = "STILLPOINT_FROM_REPOSITORY"
	EnvFromPassword   = "STILLPOINT_FROM_PASSWORD"
)

// SourceAccess names the repository a copy reads from and how to unlock
// it, apart from the target's: --from-repo, --from-password-file,
// --from-key-file, else $STILLPOINT_FROM_REPOSITORY and
// $STILLPOINT_FROM_PASSWORD, else the key file generated for it in KeyDir.
// The target's password and key file are never tried on the source.
type SourceAccess struct {
	Repository   string
	PasswordFile string
	KeyFile      string
}

// Location is the source repository's location, "" when none is given.
func (s SourceAccess) Location() string {
	if s.Repository != "" {
		return s.Repository
	}
	return os.Getenv(EnvFromRepository)
}

// OpenSource opens the repository a copy reads from.
func OpenSource(ctx context.Context, s SourceAccess) (*repo.Repository, error) {
	loc := s.Location()
	if loc == "" {
		return nil, fmt.Errorf("copy needs the repository to copy from: give --from-repo or set %s", EnvFromRepository)
	}
	be, err := Access{Repository: loc}.Backend()
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	cfg, err := repo.ReadConfig(ctx, be)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	cred, err := s.credential(cfg.ID)
	if err != nil {
		return nil, err
	}
	r, err := repo.Open(ctx, be, cred)
	if err != nil {
		return nil, fmt.Errorf("source repository: %w", err)
	}
	return r, nil
}

func (s SourceAccess) credential(repoID string) (repo.Credential, error) {
	if s.PasswordFile != "" {
		data, err := os.ReadFile(s.PasswordFile)
		if err != nil {
			return repo.Credential{}, fmt.Errorf("read the source's password file: %w", err)
		}
		pw := strings.TrimRight(string(data), "\r\n")
		if pw == "" {
			return repo.Credential{}, fmt.Errorf("the source's password file %s is empty", s.PasswordFile)
		}
		return repo.Credential{Password: pw}, nil
	}
	if pw := os.Getenv(EnvFromPassword); pw != "" && s.KeyFile == "" {
		return repo.Credential{Password: pw}, nil
	}
	path, explicit := s.KeyFile, s.KeyFile != ""
	if !explicit {
		path = filepath.Join(KeyDir(), repoID+".key")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && !explicit {
			return repo.Credential{}, fmt.Errorf("the source repository %s needs its key: no key file at %s; give --from-key-file, --from-password-file or %s", s.Location(), path, EnvFromPassword)
		}
		return repo.Credential{}, fmt.Errorf("read the source's key file: %w", err)
	}
	secret, err := repo.DecodeKeyFile(data)
	if err != nil {
		return repo.Credential{}, fmt.Errorf("%s: %w", path, err)
	}
	return repo.Credential{KeyFile: secret}, nil
}
