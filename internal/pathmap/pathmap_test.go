package pathmap

import (
	"strings"
	"testing"
)

func TestToRepoWindows(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`C:\data`, "/C/data"},
		{`c:/data`, "/C/data"},
		{`C:\data\`, "/C/data"},
		{`C:\`, "/C"},
		{`c:/`, "/C"},
		{`C:\data\.\sub\..\x.txt`, "/C/data/x.txt"},
		{`C:\..\..\data`, "/C/data"},
		{`C:\Data\File.TXT`, "/C/Data/File.TXT"},
		{`C:\data\\double`, "/C/data/double"},
		{`\\server\share`, "/UNC/server/share"},
		{`\\server\share\`, "/UNC/server/share"},
		{`\\server\share\dir\f`, "/UNC/server/share/dir/f"},
		{`//server/share/dir`, "/UNC/server/share/dir"},
		{`\\server\share\..\..\x`, "/UNC/server/share/x"},
		{`\\?\C:\long\path`, "/C/long/path"},
		{`\\?\c:\`, "/C"},
		{`\\?\C:`, "/C"},
		{`\\?\UNC\server\share\x`, "/UNC/server/share/x"},
		{`\\?\unc\server\share`, "/UNC/server/share"},
	} {
		got, err := Windows.ToRepo(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ToRepo(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		if !Windows.IsAbs(tc.in) {
			t.Errorf("IsAbs(%q) = false", tc.in)
		}
	}
}

func TestToRepoWindowsErrors(t *testing.T) {
	for _, in := range []string{
		``, `data`, `.\data`, `C:`, `C:data`, `\data`, `/data`, `\\server`, `\\server\`,
		`\\?\Volume{0b1c2d3e-0000-0000-0000-100000000000}\x`, `\\.\PhysicalDrive0`, `1:\x`,
	} {
		if got, err := Windows.ToRepo(in); err == nil {
			t.Errorf("ToRepo(%q) = %q, want an error", in, got)
		}
		if Windows.IsAbs(in) {
			t.Errorf("IsAbs(%q) = true", in)
		}
	}
}

func TestToRepoUnix(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/", "/"}, {"/srv/app", "/srv/app"}, {"/srv/app/", "/srv/app"}, {"/srv/../etc", "/etc"},
		{`/srv/a\b`, `/srv/a\b`}, {"/C:/data", "/C:/data"},
	} {
		got, err := Unix.ToRepo(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ToRepo(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "srv", `C:\data`} {
		if _, err := Unix.ToRepo(in); err == nil {
			t.Errorf("ToRepo(%q): no error", in)
		}
	}
}

func TestToOS(t *testing.T) {
	for _, tc := range []struct {
		r      Rules
		in     string
		want   string
		ok     bool
		virtua bool
	}{
		{Windows, "/", "", false, true},
		{Windows, "/C", `C:\`, true, false},
		{Windows, "/c/data", `C:\data`, true, false},
		{Windows, "/C/data/x.txt", `C:\data\x.txt`, true, false},
		{Windows, "/UNC", "", false, true},
		{Windows, "/UNC/server", "", false, true},
		{Windows, "/unc/server", "", false, true},
		{Windows, "/UNC/server/share", `\\server\share\`, true, false},
		{Windows, "/UNC/server/share/d/f", `\\server\share\d\f`, true, false},
		{Windows, "/srv/app", "", false, false},
		{Windows, "/CD/x", "", false, false},
		{Unix, "/", "/", true, false},
		{Unix, "/srv/app", "/srv/app", true, false},
		{Unix, "/C/data", "/C/data", true, false},
	} {
		got, ok := tc.r.ToOS(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%v ToOS(%q) = %q, %v; want %q, %v", tc.r, tc.in, got, ok, tc.want, tc.ok)
		}
		if v := tc.r.Virtual(tc.in); v != tc.virtua {
			t.Errorf("%v Virtual(%q) = %v", tc.r, tc.in, v)
		}
	}
}

// Every absolute Windows path maps to a repository path and back to its
// clean spelling, and that maps to the same repository path again.
func TestRoundTrip(t *testing.T) {
	for _, in := range []string{`C:\data`, `c:/data/x`, `C:\`, `\\srv\share`, `\\srv\share\a\b`, `\\?\D:\a`, `\\?\UNC\s\sh\x`} {
		rp, err := Windows.ToRepo(in)
		if err != nil {
			t.Fatal(err)
		}
		op, ok := Windows.ToOS(rp)
		if !ok {
			t.Fatalf("ToOS(%q) not ok", rp)
		}
		rp2, err := Windows.ToRepo(op)
		if err != nil || rp2 != rp {
			t.Errorf("%q → %q → %q → %q, %v", in, rp, op, rp2, err)
		}
	}
}

func TestClean(t *testing.T) {
	for _, tc := range []struct {
		r        Rules
		in, want string
	}{
		{Windows, `c:/data/`, `C:\data`},
		{Windows, `C:`, ``},
		{Windows, `c:\`, `C:\`},
		{Windows, `\\?\C:\x\..\y`, `C:\y`},
		{Windows, `//srv/share/`, `\\srv\share`},
		{Windows, `\\?\UNC\srv\share\d`, `\\srv\share\d`},
		{Unix, `/srv//app/`, `/srv/app`},
	} {
		got, err := tc.r.Clean(tc.in)
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("%v Clean(%q) = %q, %v; want %q", tc.r, tc.in, got, err, tc.want)
		}
	}
}

func TestForPaths(t *testing.T) {
	for _, tc := range []struct {
		paths []string
		want  Rules
	}{
		{nil, Unix},
		{[]string{"/srv"}, Unix},
		{[]string{`C:\data`}, Windows},
		{[]string{`C:\data`, `\\srv\share`}, Windows},
		{[]string{`C:\data`, `/srv`}, Unix},
		{[]string{`//srv/share`}, Unix}, // manifests spell shares with backslashes
	} {
		if got := ForPaths(tc.paths); got != tc.want {
			t.Errorf("ForPaths(%q) = %v", tc.paths, got)
		}
	}
}

func TestWithinAndEqual(t *testing.T) {
	for _, tc := range []struct {
		r       Rules
		p, root string
		want    bool
	}{
		{Unix, "/srv/app/x", "/srv/app", true},
		{Unix, "/srv/app", "/srv/app", true},
		{Unix, "/srv/apple", "/srv/app", false},
		{Unix, "/srv/App/x", "/srv/app", false},
		{Unix, "/anything", "/", true},
		{Windows, "/C/Data/x", "/C/data", true},
		{Windows, "/C/DATA", "/c/data", true},
		{Windows, "/C/database", "/C/data", false},
		{Windows, "/C/data", "/C/data/x", false},
	} {
		if got := tc.r.Within(tc.p, tc.root); got != tc.want {
			t.Errorf("%v Within(%q, %q) = %v", tc.r, tc.p, tc.root, got)
		}
	}
	if !Windows.Equal(`C:\Data`, `c:\data`) || Unix.Equal("/Data", "/data") {
		t.Error("Equal folds case on Windows only")
	}
	if Windows.Fold("Ä.txt") != "Ä.TXT" || Unix.Fold("a.txt") != "a.txt" {
		t.Error("Fold")
	}
}

func TestDisplayArgPattern(t *testing.T) {
	if got := Windows.Display("/C/data/f.txt"); got != `C:\data\f.txt` {
		t.Errorf("Display = %q", got)
	}
	if got := Windows.Display("/UNC/srv"); got != "/UNC/srv" {
		t.Errorf("Display virtual = %q", got)
	}
	if got := Unix.Display("/srv/x"); got != "/srv/x" {
		t.Errorf("Display unix = %q", got)
	}
	for _, tc := range []struct {
		r        Rules
		in, want string
	}{
		{Windows, `C:\data\f.txt`, "/C/data/f.txt"},
		{Windows, `c:/data`, "/C/data"},
		{Windows, `/C/data`, "/C/data"},
		{Windows, `\C\data\`, "/C/data"},
		{Windows, `\\srv\share\x`, "/UNC/srv/share/x"},
		{Windows, `C/data`, "/C/data"},
		{Unix, "srv/app", "/srv/app"},
		{Unix, "/srv/app/", "/srv/app"},
		{Unix, `C:\data`, `/C:\data`},
	} {
		if got := tc.r.Arg(tc.in); got != tc.want {
			t.Errorf("%v Arg(%q) = %q, want %q", tc.r, tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct {
		r        Rules
		in, want string
	}{
		{Windows, `C:\data\cache`, "/C/data/cache"},
		{Windows, `C:\data\cache\`, "/C/data/cache/"},
		{Windows, `*.TMP`, "*.TMP"},
		{Windows, `cache\`, "cache/"},
		{Windows, `data\**\tmp`, "data/**/tmp"},
		{Windows, `\\srv\share\x`, "/UNC/srv/share/x"},
		{Unix, `a\*`, `a\*`},
		{Unix, "/srv/x/", "/srv/x/"},
	} {
		if got := tc.r.Pattern(tc.in); got != tc.want {
			t.Errorf("%v Pattern(%q) = %q, want %q", tc.r, tc.in, got, tc.want)
		}
	}
}

func TestLong(t *testing.T) {
	short := `C:\data\x.txt`
	if Windows.Long(short) != short {
		t.Error("a short path keeps its form")
	}
	deep := `C:\` + strings.Repeat(`abcdefghij\`, 30) + "f.txt"
	if got := Windows.Long(deep); got != `\\?\`+deep {
		t.Errorf("Long = %q", got)
	}
	unc := `\\srv\share\` + strings.Repeat(`abcdefghij\`, 30) + "f"
	if got := Windows.Long(unc); got != `\\?\UNC\srv\share\`+strings.Repeat(`abcdefghij\`, 30)+"f" {
		t.Errorf("Long UNC = %q", got)
	}
	if got := Windows.Long(`\\?\` + deep); got != `\\?\`+deep {
		t.Errorf("Long twice = %q", got)
	}
	unixDeep := "/" + strings.Repeat("abcdefghij/", 30)
	if Unix.Long(unixDeep) != unixDeep {
		t.Error("Unix paths are never changed")
	}
	// what Long returns maps back to the same repository path
	rp, _ := Windows.ToRepo(Windows.Long(unc))
	if want, _ := Windows.ToRepo(unc); rp != want {
		t.Errorf("%q != %q", rp, want)
	}
}

func TestSamePaths(t *testing.T) {
	for _, tc := range []struct {
		a, b []string
		want bool
	}{
		{[]string{"/srv/a", "/srv/b"}, []string{"/srv/a", "/srv/b"}, true},
		{[]string{"/srv/a"}, []string{"/srv/A"}, false},
		{[]string{`C:\Data`}, []string{`C:\data`}, true},
		{[]string{`C:\data`, `D:\x`}, []string{`C:\data`}, false},
		{nil, nil, true},
		{[]string{`C:\data`}, []string{`/C:\data`}, false},
	} {
		if got := SamePaths(tc.a, tc.b); got != tc.want {
			t.Errorf("SamePaths(%q, %q) = %v", tc.a, tc.b, got)
		}
	}
}

func TestHasPath(t *testing.T) {
	for _, tc := range []struct {
		paths []string
		p     string
		want  bool
	}{
		{[]string{"/srv/app"}, "/srv/app", true},
		{[]string{"/srv/app"}, "/srv/app/", false}, // as before: exact
		{[]string{"/srv/app"}, "/srv/App", false},
		{[]string{`C:\data`}, `C:\data`, true},
		{[]string{`C:\data`}, `c:/Data/`, true},
		{[]string{`C:\data`, `\\srv\share`}, `\\SRV\share`, true},
		{[]string{`C:\data`}, `/C/data`, false},
		{[]string{`C:\data`}, `D:\data`, false},
	} {
		if got := HasPath(tc.paths, tc.p); got != tc.want {
			t.Errorf("HasPath(%q, %q) = %v", tc.paths, tc.p, got)
		}
	}
}
