package job

import (
	"os"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// The tests write their job files and the values they expect with Unix
// paths (/srv/app). On Windows such a path is not absolute, and rightly
// rejected, so there they become drive paths (C:\srv\app) through native
// and nativeYAML: the same files, the same assertions, on both platforms.
// Hints are the package's own text and are compared as written.

// unixPath matches an absolute Unix path that starts a word of a job file
// or a message: after a blank, a quote or a YAML flow indicator, not
// after "(" or "=" (root@unix(/run/mysqld.sock)/, host=/run/postgresql are
// connection strings, not paths the package checks).
var unixPath = regexp.MustCompile(`(^|[\s\[{,'])(/[^\s,\]}'"]*)`)

// windowsPaths writes each absolute Unix path of s as a path of drive C:
// with backslashes. With inYAML, text between double quotes is left alone:
// a backslash starts an escape there.
func windowsPaths(s string, inYAML bool) string {
	conv := func(t string) string {
		return unixPath.ReplaceAllStringFunc(t, func(m string) string {
			i := strings.IndexByte(m, '/')
			return m[:i] + `C:` + strings.ReplaceAll(m[i:], "/", `\`)
		})
	}
	if !inYAML {
		return conv(s)
	}
	parts := strings.Split(s, `"`)
	for i := 0; i < len(parts); i += 2 {
		parts[i] = conv(parts[i])
	}
	return strings.Join(parts, `"`)
}

// native is s (a path, a message, an expected value) with its Unix paths
// written as absolute paths of this platform.
func native(s string) string {
	if runtime.GOOS == "windows" {
		return windowsPaths(s, false)
	}
	return s
}

// nativeYAML is native for a job file's text.
func nativeYAML(s string) string {
	if runtime.GOOS == "windows" {
		return windowsPaths(s, true)
	}
	return s
}

func TestWindowsPaths(t *testing.T) {
	for _, c := range []struct {
		in, want string
		yaml     bool
	}{
		{"/srv/app", `C:\srv\app`, false},
		{"sources:\n  - path: /srv/app/\n", "sources:\n  - path: C:\\srv\\app\\\n", true},
		{"sources: [/srv, /var/tmp]", `sources: [C:\srv, C:\var\tmp]`, true},
		{"{path: /srv/b, retries: 1}", `{path: C:\srv\b, retries: 1}`, true},
		{"sources: ['/srv/a']", `sources: ['C:\srv\a']`, true},
		{"/srv/app is inside the source /srv and will be backed up twice", `C:\srv\app is inside the source C:\srv and will be backed up twice`, false},
		// connection strings, patterns and relative paths stay
		{`mysql: root@unix(/run/mysqld/mysqld.sock)/`, `mysql: root@unix(/run/mysqld/mysqld.sock)/`, true},
		{"postgres: host=/run/postgresql", "postgres: host=/run/postgresql", true},
		{`exclude: ["*.tmp", "cache/"], hold-exclude: [sbin/auditd]`, `exclude: ["*.tmp", "cache/"], hold-exclude: [sbin/auditd]`, true},
		// between double quotes a backslash would be an escape
		{`run: "pg_dumpall -f /srv/dump/all.sql"`, `run: "pg_dumpall -f /srv/dump/all.sql"`, true},
		{`"pg_dumpall -f /srv/dump/all.sql"`, `"pg_dumpall -f C:\srv\dump\all.sql"`, false},
	} {
		if got := windowsPaths(c.in, c.yaml); got != c.want {
			t.Errorf("windowsPaths(%q, %v) = %q, want %q", c.in, c.yaml, got, c.want)
		}
	}
}

// loadNative is Load of a job file written for Unix; on Windows its paths
// become drive paths first (docs/job-example.yaml is a Linux job).
func loadNative(path string) (*Job, []Warning, error) {
	if runtime.GOOS != "windows" {
		return Load(path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	return Parse(path, []byte(nativeYAML(string(data))))
}
