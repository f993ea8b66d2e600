package run

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

// EnvNewPassword gives `key add` and `key passwd` the new password.
const EnvNewPassword = "STILLPOINT_NEW_PASSWORD"

// OpenKeyring opens the repository's keys with the password or key file
// that a names, found as every other command finds them.
func OpenKeyring(ctx context.Context, a Access) (*repo.Keyring, error) {
	be, cred, err := a.existing(ctx)
	if err != nil {
		return nil, err
	}
	return repo.OpenKeyring(ctx, be, cred)
}

// NewPassword reads a new password from file, else from $STILLPOINT_NEW_PASSWORD;
// "" when neither gives one.
func NewPassword(file string) (string, error) {
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read new password file: %w", err)
		}
		pw := strings.TrimRight(string(data), "\r\n")
		if pw == "" {
			return "", fmt.Errorf("new password file %s is empty", file)
		}
		return pw, nil
	}
	return os.Getenv(EnvNewPassword), nil
}

// NewKeyFile writes a fresh key file for the repository at path (mode
// 0600, never over an existing file) and returns its credential.
func NewKeyFile(path, repoID string) (repo.Credential, error) {
	secret := repo.NewKeyFileSecret()
	if err := repo.WriteKeyFile(path, repo.EncodeKeyFile(repoID, secret)); err != nil {
		return repo.Credential{}, fmt.Errorf("write key file: %w", err)
	}
	return repo.Credential{KeyFile: secret}, nil
}

// DefaultKeyFile is where a repository's key file is looked for when no
// --key-file, --password-file or environment variable says otherwise.
func DefaultKeyFile(a Access, repoID string) (path string, explicit bool) {
	return a.keyFilePath(repoID)
}
