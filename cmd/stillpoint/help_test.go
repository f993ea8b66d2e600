package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stillpoint-backup/stillpoint/internal/buildinfo"
)

// documented lists every command a man page is written for: what
// `stillpoint --help` lists, and their subcommands.
func documented(c *cobra.Command) []*cobra.Command {
	cmds := []*cobra.Command{c}
	for _, sub := range c.Commands() {
		if sub.IsAvailableCommand() && !sub.IsAdditionalHelpTopicCommand() {
			cmds = append(cmds, documented(sub)...)
		}
	}
	return cmds
}

// TestEveryCommandHasExamples fails on a command whose --help and man page
// show no example, including commands added later.
func TestEveryCommandHasExamples(t *testing.T) {
	cmds := documented(newRootFor(&globals{}))
	if len(cmds) < 20 {
		t.Fatalf("only %d commands found", len(cmds))
	}
	for _, c := range cmds {
		path := c.CommandPath()
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("%s: no Example (cobra's Example field: the two or three commands people run)", path)
			continue
		}
		// each example is a command of its own, indented as cobra prints the
		// section; at least one runs this command (for a parent, one of its subcommands)
		runs := false
		for _, line := range strings.Split(c.Example, "\n") {
			if !strings.HasPrefix(line, "  ") {
				t.Errorf("%s: example line %q is not indented by two spaces", path, line)
			}
			if strings.Contains(line, path+" ") || strings.HasSuffix(line, path) {
				runs = true
			}
		}
		if !runs {
			t.Errorf("%s: no example runs %q:\n%s", path, path, c.Example)
		}
	}
}

func TestHelpShowsExamples(t *testing.T) {
	for _, args := range [][]string{{"backup", "--help"}, {"key", "add", "--help"}, {"--help"}} {
		root := newRootFor(&globals{})
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetArgs(args)
		if err := root.Execute(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if !strings.Contains(out.String(), "\nExamples:\n  stillpoint ") {
			t.Errorf("stillpoint %s shows no Examples section:\n%s", strings.Join(args, " "), out.String())
		}
	}
}

// TestManPages renders every page twice: one per command, each with its
// examples, the header's date and not the day's, and the same bytes both times.
func TestManPages(t *testing.T) {
	date := time.Date(2024, time.March, 9, 12, 0, 0, 0, time.UTC)
	render := func() map[string][]byte {
		dir := t.TempDir()
		if err := writeManPages(newRootFor(&globals{}), dir, date); err != nil {
			t.Fatal(err)
		}
		pages := map[string][]byte{}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			data, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			pages[e.Name()] = data
		}
		return pages
	}
	first := render()
	cmds := documented(newRootFor(&globals{}))
	if len(first) != len(cmds) {
		t.Errorf("%d pages for %d commands", len(first), len(cmds))
	}
	for _, c := range cmds {
		name := strings.ReplaceAll(c.CommandPath(), " ", "-") + ".1"
		page, ok := first[name]
		if !ok {
			t.Errorf("no page %s", name)
			continue
		}
		s := string(page)
		header := `.TH "` + strings.ToUpper(strings.ReplaceAll(c.CommandPath(), " ", "-")) + `" "1" "Mar 2024" "stillpoint ` + buildinfo.Version() + `" "stillpoint manual"`
		if !strings.Contains(s, header+"\n") {
			t.Errorf("%s: no header %s:\n%.300s", name, header, s)
		}
		if !strings.Contains(s, "\n.SH EXAMPLE\n") || !strings.Contains(s, "\n.SH SYNOPSIS\n") {
			t.Errorf("%s lacks its SYNOPSIS or EXAMPLE section", name)
		}
		if strings.Contains(s, "Auto generated") || strings.Contains(s, time.Now().Format("2-Jan-2006")) {
			t.Errorf("%s carries the day it was rendered", name)
		}
	}
	second := render()
	for name, page := range first {
		if !bytes.Equal(page, second[name]) {
			t.Errorf("%s differs between two renderings", name)
		}
	}
}

func TestManDate(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	d, err := manDate()
	if err != nil || !d.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("manDate() = %v, %v; want SOURCE_DATE_EPOCH's time", d, err)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
	if _, err := manDate(); err == nil {
		t.Error("a SOURCE_DATE_EPOCH that is no number was taken")
	}
}

func TestCompletionScripts(t *testing.T) {
	marks := map[string]string{
		"bash":       "complete -o default -F __start_stillpoint stillpoint",
		"zsh":        "#compdef stillpoint",
		"fish":       "complete -c stillpoint",
		"powershell": "Register-ArgumentCompleter",
	}
	dir := t.TempDir()
	for _, shell := range completionShells {
		file := filepath.Join(dir, "sub", shell)
		root := newRootFor(&globals{})
		root.SetArgs([]string{"generate", "--completion", shell, file})
		if err := root.Execute(); err != nil {
			t.Fatalf("%s: %v", shell, err)
		}
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), marks[shell]) {
			t.Errorf("%s completion lacks %q", shell, marks[shell])
		}
	}
	// without FILE, to stdout
	root := newRootFor(&globals{})
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"generate", "--completion", "fish"})
	if err := root.Execute(); err != nil || !strings.Contains(out.String(), marks["fish"]) {
		t.Errorf("fish completion on stdout: %v, %.100q", err, out.String())
	}
}

func TestGenerateUsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"generate"},
		{"generate", "--man", dir, "--completion", "bash"},
		{"generate", "--man", dir, "extra"},
		{"generate", "--completion", "bash", "a", "b"},
		{"generate", "--completion", "tcsh"},
	} {
		root := newRootFor(&globals{})
		root.SetArgs(args)
		err := root.Execute()
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != exitUsage {
			t.Errorf("%v: %v, want a usage error (exit %d)", args, err, exitUsage)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Errorf("a refused generate wrote %d files", len(entries))
	}
}

func TestVersion(t *testing.T) {
	run := func(args ...string) string {
		root := newRootFor(&globals{})
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetArgs(args)
		if err := root.Execute(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return out.String()
	}
	long := run("version")
	for _, want := range []string{"stillpoint " + buildinfo.Version() + "\n", "\ncommit:", "\nbuilt:", "\ngo:       " + runtime.Version() + "\n", "\nplatform: " + runtime.GOOS + "/" + runtime.GOARCH + "\n"} {
		if !strings.Contains(long, want) {
			t.Errorf("stillpoint version lacks %q:\n%s", want, long)
		}
	}
	if v := run("--version"); v != long {
		t.Errorf("--version says\n%s\nbut version says\n%s", v, long)
	}
	var in buildinfo.Info
	if err := json.Unmarshal([]byte(run("version", "--json")), &in); err != nil || in != buildinfo.Get() {
		t.Errorf("version --json: %+v, %v; want %+v", in, err, buildinfo.Get())
	}
}

// A wrong number of arguments is said in words, with the command's usage,
// for each of cobra's checks the commands use.
func TestArgumentCountInWords(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"restore"}, "stillpoint restore: takes one argument, got none (usage: stillpoint restore SNAPSHOT"},
		{[]string{"diff", "a"}, "stillpoint diff: takes 2 arguments, got one (usage: stillpoint diff SNAPSHOT1 SNAPSHOT2"},
		{[]string{"diff", "a", "b", "c"}, "stillpoint diff: takes 2 arguments, got 3"},
	} {
		root := newRootFor(&globals{})
		root.SetArgs(c.args)
		root.SetOut(new(bytes.Buffer))
		root.SetErr(new(bytes.Buffer))
		cmd, err := root.ExecuteC()
		if err == nil {
			t.Fatalf("%v: no error", c.args)
		}
		if got := usageMessage(cmd, err); !strings.HasPrefix(got, c.want) {
			t.Errorf("%v: %q, want it to begin %q", c.args, got, c.want)
		}
	}
	// a command of subcommands only, given none, names itself once
	root := newRootFor(&globals{})
	root.SetArgs([]string{"key"})
	root.SetOut(new(bytes.Buffer))
	root.SetErr(new(bytes.Buffer))
	var ee *exitError
	if _, err := root.ExecuteC(); !errors.As(err, &ee) || ee.code != exitUsage ||
		!strings.HasPrefix(ee.err.Error(), "key needs a subcommand: list, add") {
		t.Errorf("key without a subcommand: %v, want a usage error that begins \"key needs a subcommand\"", err)
	}
	for msg, want := range map[string]string{
		"requires at least 1 arg(s), only received 0": "takes at least one argument, got none",
		"accepts at most 2 arg(s), received 3":        "takes at most 2 arguments, got 3",
		"accepts between 1 and 2 arg(s), received 0":  "takes 1 to 2 arguments, got none",
		"unknown flag: --bogus":                       "unknown flag: --bogus",
	} {
		if got := argsInWords(msg); got != want {
			t.Errorf("argsInWords(%q) = %q, want %q", msg, got, want)
		}
	}
}
