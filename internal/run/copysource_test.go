package run

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

func TestOpenSourceCredentials(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	keyDir := filepath.Join(dir, "keys")
	t.Setenv(EnvKeyDir, keyDir)
	t.Setenv(EnvFromRepository, "")
	t.Setenv(EnvFromPassword, "")
	// the target's credentials must never be tried on the source
	t.Setenv(EnvPassword, "source-password")
	t.Setenv(EnvKeyFile, filepath.Join(dir, "nowhere.key"))

	pwRepo := filepath.Join(dir, "pw")
	if _, err := repo.Init(ctx, backend.NewLocal(pwRepo), repo.Credential{Password: "source-password"}, repo.DefaultConfig); err != nil {
		t.Fatal(err)
	}
	keyRepo := filepath.Join(dir, "kf")
	secret := repo.NewKeyFileSecret()
	r, err := repo.Init(ctx, backend.NewLocal(keyRepo), repo.Credential{KeyFile: secret}, repo.DefaultConfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(keyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(keyDir, r.Config().ID+".key")
	if err := os.WriteFile(keyFile, repo.EncodeKeyFile(r.Config().ID, secret), 0o600); err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwFile, []byte("source-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	if _, err := OpenSource(ctx, SourceAccess{}); err == nil || !strings.Contains(err.Error(), "--from-repo") {
		t.Fatalf("no source: %v", err)
	}
	// the key file made with the source is found in the key directory
	if _, err := OpenSource(ctx, SourceAccess{Repository: keyRepo}); err != nil {
		t.Fatalf("source with its generated key file: %v", err)
	}
	if _, err := OpenSource(ctx, SourceAccess{Repository: pwRepo, PasswordFile: pwFile}); err != nil {
		t.Fatalf("--from-password-file: %v", err)
	}
	// $STILLPOINT_PASSWORD is the target's: without a source password the
	// source's default key file is looked for, and its absence said
	_, err = OpenSource(ctx, SourceAccess{Repository: pwRepo})
	if err == nil || !strings.Contains(err.Error(), "--from-key-file, --from-password-file or "+EnvFromPassword) {
		t.Fatalf("source without its key: %v", err)
	}
	t.Setenv(EnvFromRepository, pwRepo)
	t.Setenv(EnvFromPassword, "wrong")
	if _, err := OpenSource(ctx, SourceAccess{}); !errors.Is(err, repo.ErrWrongKey) || !strings.Contains(err.Error(), "source repository") {
		t.Fatalf("wrong $%s: %v", EnvFromPassword, err)
	}
	t.Setenv(EnvFromPassword, "source-password")
	if _, err := OpenSource(ctx, SourceAccess{}); err != nil {
		t.Fatalf("$%s and $%s: %v", EnvFromRepository, EnvFromPassword, err)
	}
	// a key file given wins over the environment's password
	if _, err := OpenSource(ctx, SourceAccess{Repository: keyRepo, KeyFile: keyFile}); err != nil {
		t.Fatalf("--from-key-file beside $%s: %v", EnvFromPassword, err)
	}
	if _, err := OpenSource(ctx, SourceAccess{Repository: filepath.Join(dir, "none")}); err == nil || !strings.Contains(err.Error(), "source: no stillpoint repository") {
		t.Fatalf("a source that is no repository: %v", err)
	}
}
