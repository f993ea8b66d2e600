package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/stillpoint-backup/stillpoint/internal/buildinfo"
)

// completionShells are the shells `generate --completion` writes scripts for.
var completionShells = []string{"bash", "zsh", "fish", "powershell"}

func newGenerateCmd() *cobra.Command {
	var man, shell string
	cmd := &cobra.Command{
		Use:   "generate --man DIR | --completion SHELL [FILE]",
		Short: "Write the man pages, or a shell completion script",
		Long: `Write a man page for every command into DIR (stillpoint.1, stillpoint-backup.1, …),
or the completion script for SHELL (bash, zsh, fish or powershell) to FILE or stdout.
Both come from the commands themselves, so they always match this binary.

The pages are dated $SOURCE_DATE_EPOCH if set, else by the commit's time, so the same
binary writes the same bytes.`,
		Example: `  stillpoint generate --man /usr/local/share/man/man1
  stillpoint generate --completion bash /etc/bash_completion.d/stillpoint
  stillpoint generate --completion zsh > "${fpath[1]}/_stillpoint"`,
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case (man == "") == (shell == ""):
				return &exitError{code: exitUsage, err: errors.New("give --man DIR or --completion SHELL")}
			case man != "" && len(args) > 0:
				return &exitError{code: exitUsage, err: fmt.Errorf("--man takes no file, got %q", strings.Join(args, " "))}
			case len(args) > 1:
				return &exitError{code: exitUsage, err: fmt.Errorf("--completion takes one file at most, got %q", strings.Join(args, " "))}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			root := cmd.Root()
			if man != "" {
				date, err := manDate()
				if err != nil {
					return &exitError{code: exitUsage, err: err}
				}
				return writeManPages(root, man, date)
			}
			file := "-"
			if len(args) == 1 {
				file = args[0]
			}
			return writeCompletion(root, shell, file, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&man, "man", "", "write the man pages into this directory (made if missing)")
	cmd.Flags().StringVar(&shell, "completion", "", "write the completion script for this shell: "+strings.Join(completionShells, ", "))
	return cmd
}

// manDate is the date the pages carry: $SOURCE_DATE_EPOCH (the convention of
// reproducible builds), else the time of the commit the binary was built
// from, else today.
func manDate() (time.Time, error) {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970", s)
		}
		return time.Unix(sec, 0).UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339, buildinfo.Get().Date); err == nil {
		return t.UTC(), nil
	}
	return time.Now().UTC(), nil
}

// writeManPages writes one page in section 1 for every command below root.
func writeManPages(root *cobra.Command, dir string, date time.Time) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	disableAutoGenTag(root)
	return doc.GenManTreeFromOpts(root, doc.GenManTreeOptions{
		Path:             dir,
		CommandSeparator: "-",
		Header: &doc.GenManHeader{
			Section: "1",
			Date:    &date,
			Source:  "stillpoint " + buildinfo.Get().Version,
			Manual:  "stillpoint manual",
		},
	})
}

// disableAutoGenTag drops the "Auto generated" history, which carries the
// date of the run instead of the header's.
func disableAutoGenTag(c *cobra.Command) {
	c.DisableAutoGenTag = true
	for _, sub := range c.Commands() {
		disableAutoGenTag(sub)
	}
}

// writeCompletion writes shell's completion script to file ("-": w).
func writeCompletion(root *cobra.Command, shell, file string, w io.Writer) error {
	var buf bytes.Buffer
	var err error
	switch shell {
	case "bash":
		err = root.GenBashCompletionV2(&buf, true)
	case "zsh":
		err = root.GenZshCompletion(&buf)
	case "fish":
		err = root.GenFishCompletion(&buf, true)
	case "powershell":
		err = root.GenPowerShellCompletionWithDesc(&buf)
	default:
		return &exitError{code: exitUsage, err: fmt.Errorf("--completion %q: want one of %s", shell, strings.Join(completionShells, ", "))}
	}
	if err != nil {
		return err
	}
	if file == "-" {
		_, err = w.Write(buf.Bytes())
		return err
	}
	if d := filepath.Dir(file); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	return os.WriteFile(file, buf.Bytes(), 0o644)
}
