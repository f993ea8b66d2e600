package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/report"
	"github.com/stillpoint-backup/stillpoint/internal/run"
	"golang.org/x/term"
)

func newKeyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "List, add, remove and change the keys that open the repository",
		Long: `Every key (a password or a key file) wraps the same master key, so adding, removing or
changing a key rewrites no data: every snapshot stays readable with each remaining key.
The repository is opened with --password-file, $` + run.EnvPassword + ` or the key file, as for
every other command; that key is the one "in use".`,
		Example: `  stillpoint key list
  stillpoint key add --new-password-file /root/second-password
  stillpoint key remove 3f2a9c`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return &exitError{code: exitUsage, err: errors.New("key needs a subcommand: list, add, remove ID or passwd (more with stillpoint key --help)")}
		},
	}
	cmd.AddCommand(newKeyListCmd(g), newKeyAddCmd(g), newKeyRemoveCmd(g), newKeyPasswdCmd(g))
	return cmd
}

// newKeyFlags is how a new key is given: a password or a new key file.
type newKeyFlags struct {
	passwordFile string
	keyFile      string
}

func (f *newKeyFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.passwordFile, "new-password-file", "", "read the new password from this file (or set $"+run.EnvNewPassword+"; on a terminal it is asked for)")
	cmd.Flags().StringVar(&f.keyFile, "new-key-file", "", "write a new key file here (mode 0600; an existing file is never overwritten) instead of using a password")
}

const newKeyLong = `

The new key is a password from --new-password-file or $` + run.EnvNewPassword + `, or asked for twice
when stdin is a terminal; or, with --new-key-file PATH, a fresh key file written to PATH with
mode 0600 (an existing file is never overwritten).`

func newKeyListCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the keys: id, created, host, user, kind, and the one in use",
		Example: `  stillpoint key list
  stillpoint key list --json`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runKeyList(cmd.Context(), g)
		},
	}
}

func newKeyAddCmd(g *globals) *cobra.Command {
	var f newKeyFlags
	cmd := &cobra.Command{
		Use:   "add",
		Short: "Add another password or key file",
		Long:  "Add another way to open the repository." + newKeyLong,
		Example: `  stillpoint key add                           # asks for the new password on a terminal
  stillpoint key add --new-password-file /root/second-password
  stillpoint key add --new-key-file /media/usb/stillpoint.key`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runKeyAdd(cmd.Context(), g, f)
		},
	}
	f.register(cmd)
	return cmd
}

func newKeyRemoveCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "remove ID",
		Short: "Remove a key",
		Long: `Remove the key whose id starts with ID (as key list shows it). The last key is never
removed, nor the key in use without --force: the repository must stay openable.`,
		Example: `  stillpoint key remove 3f2a9c
  stillpoint key remove 3f2a9c --force         # the key in use, when another is left`,
		Args: exactlyOneKeyID,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runKeyRemove(cmd.Context(), g, args[0], force)
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "remove the key in use too (another key must be left)")
	return cmd
}

func newKeyPasswdCmd(g *globals) *cobra.Command {
	var f newKeyFlags
	cmd := &cobra.Command{
		Use:   "passwd",
		Short: "Replace the key in use with a new password or key file",
		Long: `Replace the key in use: the new key is added first, then the one in use is removed, so an
interruption leaves two keys that open the repository, never none.` + newKeyLong,
		Example: `  stillpoint key passwd                        # asks for the new password on a terminal
  stillpoint key passwd --new-password-file /root/new-password`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runKeyPasswd(cmd.Context(), g, f)
		},
	}
	f.register(cmd)
	return cmd
}

func exactlyOneKeyID(_ *cobra.Command, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("takes one key id (`stillpoint key list` shows them), got %d arguments", len(args))
	}
	return nil
}

func runKeyList(ctx context.Context, g *globals) error {
	rep := g.reporter()
	kr, err := run.OpenKeyring(ctx, g.access)
	if err != nil {
		return err
	}
	keys, err := kr.List(ctx)
	if err != nil {
		return err
	}
	if rep.Mode == report.JSON {
		rep.Event(keys)
		return nil
	}
	w := tabwriter.NewWriter(rep.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, " \tID\tCREATED\tHOST\tUSER\tKIND")
	for _, k := range keys {
		mark, kind := " ", k.Kind
		if k.InUse {
			mark = "*"
		}
		if k.Damaged != "" {
			kind = "damaged: " + k.Damaged
		}
		created := "-"
		if !k.Created.IsZero() {
			created = k.Created.Local().Format("2006-01-02 15:04:05")
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", mark, k.Short(), created, orDash(k.Host), orDash(k.User), kind)
	}
	w.Flush()
	noun := "keys"
	if len(keys) == 1 {
		noun = "key"
	}
	fmt.Fprintf(rep.Out, "%d %s; * is the one in use\n", len(keys), noun)
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// newCredential reads the new key the flags give, writing a new key file
// if asked to. It is a usage error to give none or both.
func newCredential(f newKeyFlags, repoID string) (repo.Credential, error) {
	if f.keyFile != "" {
		if f.passwordFile != "" {
			return repo.Credential{}, &exitError{code: exitUsage, err: errors.New("give --new-password-file or --new-key-file, not both")}
		}
		return run.NewKeyFile(f.keyFile, repoID)
	}
	pw, err := run.NewPassword(f.passwordFile)
	if err != nil {
		return repo.Credential{}, err
	}
	if pw == "" {
		if pw, err = askNewPassword(); err != nil {
			return repo.Credential{}, err
		}
	}
	return repo.Credential{Password: pw}, nil
}

// askNewPassword asks twice on the terminal.
func askNewPassword() (string, error) {
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return "", &exitError{code: exitUsage, err: fmt.Errorf("no new key given: use --new-password-file FILE or $%s for a password (on a terminal it is asked for), or --new-key-file PATH for a key file", run.EnvNewPassword)}
	}
	ask := func(prompt string) (string, error) {
		fmt.Fprint(os.Stderr, prompt)
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(os.Stderr)
		return string(b), err
	}
	pw, err := ask("new password: ")
	if err != nil {
		return "", err
	}
	if pw == "" {
		return "", errors.New("the new password is empty; nothing changed")
	}
	again, err := ask("repeat the new password: ")
	if err != nil {
		return "", err
	}
	if again != pw {
		return "", errors.New("the passwords differ; nothing changed")
	}
	return pw, nil
}

func describeKey(k repo.KeyInfo, f newKeyFlags) string {
	if k.Kind == repo.KeyKindFile {
		return fmt.Sprintf("key %s (key file %s, mode 0600)", k.Short(), f.keyFile)
	}
	return fmt.Sprintf("key %s (password)", k.Short())
}

// dropNewKeyFile removes the key file newCredential wrote when its key
// could not be added, so no file is left that opens nothing.
func dropNewKeyFile(f newKeyFlags, cred repo.Credential) {
	if f.keyFile != "" && len(cred.KeyFile) > 0 {
		os.Remove(f.keyFile)
	}
}

func runKeyAdd(ctx context.Context, g *globals, f newKeyFlags) error {
	rep := g.reporter()
	kr, err := run.OpenKeyring(ctx, g.access)
	if err != nil {
		return err
	}
	cred, err := newCredential(f, kr.RepositoryID())
	if err != nil {
		return err
	}
	k, err := kr.Add(ctx, cred)
	if err != nil {
		dropNewKeyFile(f, cred)
		return err
	}
	rep.Event(map[string]any{"type": "key_added", "key": k, "key_file": f.keyFile})
	rep.Printf("added %s\n", describeKey(k, f))
	if f.keyFile != "" {
		rep.Printf("KEEP A COPY OF THAT KEY FILE ELSEWHERE: it opens the repository like every other key.\n")
	}
	return nil
}

func runKeyRemove(ctx context.Context, g *globals, id string, force bool) error {
	rep := g.reporter()
	kr, err := run.OpenKeyring(ctx, g.access)
	if err != nil {
		return err
	}
	k, err := kr.Remove(ctx, id, force)
	if err != nil {
		return err
	}
	rep.Event(map[string]any{"type": "key_removed", "key": k})
	rep.Printf("removed key %s (%s)\n", k.Short(), orDash(k.Kind))
	if k.InUse {
		rep.Printf("it was the key in use: open the repository with another key from now on\n")
	}
	return nil
}

func runKeyPasswd(ctx context.Context, g *globals, f newKeyFlags) error {
	rep := g.reporter()
	kr, err := run.OpenKeyring(ctx, g.access)
	if err != nil {
		return err
	}
	cred, err := newCredential(f, kr.RepositoryID())
	if err != nil {
		return err
	}
	added, removed, err := kr.Passwd(ctx, cred)
	if err != nil {
		if added.ID == "" {
			dropNewKeyFile(f, cred)
		}
		return err
	}
	rep.Event(map[string]any{"type": "key_changed", "added": added, "removed": removed, "key_file": f.keyFile})
	rep.Printf("added %s\n", describeKey(added, f))
	rep.Printf("removed key %s (%s), the one in use\n", removed.Short(), removed.Kind)
	if removed.Kind == repo.KeyKindFile {
		if p, _ := run.DefaultKeyFile(g.access, kr.RepositoryID()); p != "" {
			rep.Printf("the key file %s no longer opens this repository\n", p)
		}
	}
	if added.Kind == repo.KeyKindPassword {
		rep.Printf("from now on open the repository with the new password (--password-file or $%s)\n", run.EnvPassword)
	} else {
		rep.Printf("from now on open the repository with --key-file %s (or $%s); KEEP A COPY OF IT ELSEWHERE\n", f.keyFile, run.EnvKeyFile)
	}
	return nil
}
