package vss

import "testing"

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

func TestExpandEnv(t *testing.T) {
	lookup := env(map[string]string{"SystemRoot": `C:\Windows`, "ProgramData": `C:\ProgramData`})
	for _, c := range []struct {
		in, out string
		ok      bool
	}{
		{`%SystemRoot%\System32\config`, `C:\Windows\System32\config`, true},
		{`%ProgramData%\%SystemRoot%`, `C:\ProgramData\C:\Windows`, true},
		{`D:\sql\data`, `D:\sql\data`, true},
		{`%NoSuch%\x`, `%NoSuch%\x`, false},
		{`50% of %SystemRoot%`, `50% of %SystemRoot%`, false}, // "% of " is no variable
		{`100%`, `100%`, true},
	} {
		got, ok := expandEnv(c.in, lookup)
		if got != c.out || ok != c.ok {
			t.Errorf("expandEnv(%q) = %q, %v; want %q, %v", c.in, got, ok, c.out, c.ok)
		}
	}
}

func TestNormPath(t *testing.T) {
	for _, c := range []struct {
		in, out string
		ok      bool
	}{
		{`D:\SQL\Data\`, `d:\sql\data`, true},
		{`d:/sql/data`, `d:\sql\data`, true},
		{`\\?\D:\sql\.\x\..\data`, `d:\sql\data`, true},
		{`C:\`, `c:`, true},
		{`C:`, `c:`, true},
		{`\\Server\Share\Dir\`, `\\server\share\dir`, true},
		{`\\?\UNC\server\share\dir`, `\\server\share\dir`, true},
		{`\\?\Volume{3a7b1c2d-0000-0000-0000-100000000000}\sql`, "", false},
		{`%SystemRoot%\x`, "", false},
		{`relative\dir`, "", false},
		{`\\server`, "", false},
	} {
		got, ok := normPath(c.in)
		if got != c.out || ok != c.ok {
			t.Errorf("normPath(%q) = %q, %v; want %q, %v", c.in, got, ok, c.out, c.ok)
		}
	}
}

func TestWriterCovers(t *testing.T) {
	sql := Writer{FilesKnown: true, Files: []FileDesc{
		{Path: `D:\sql\data`, Filespec: "*.mdf"},
		{Path: `D:\sql\logs\`, Filespec: "*.ldf"},
		{Path: `E:\dumps`, Filespec: "*", Recursive: true},
	}}
	for _, c := range []struct {
		source string
		want   bool
	}{
		{`D:\sql`, true},             // contains the data
		{`D:\`, true},                // the volume root contains it
		{`d:\SQL\Data`, true},        // the path itself, without case
		{`D:\sql\data\db.mdf`, true}, // a file directly in it
		{`D:\sql\data\old\x.mdf`, false},
		{`D:\sql\data2`, false}, // whole elements only
		{`D:\sqlx`, false},
		{`C:\users`, false},
		{`E:\dumps\2026\01`, true}, // below a recursive one
		{`E:\`, true},
		{`F:\`, false},
		{`relative`, true}, // what cannot be compared is covered
	} {
		if got := sql.Covers(c.source); got != c.want {
			t.Errorf("Covers(%s) = %v, want %v", c.source, got, c.want)
		}
	}
	for name, w := range map[string]Writer{
		"no file descriptors": {FilesKnown: true},
		"files not known":     {Files: sql.Files},
	} {
		for _, src := range []string{`C:\users`, `D:\sql`, `Z:\`} {
			if !w.Covers(src) {
				t.Errorf("a writer with %s must cover every source, not %s", name, src)
			}
		}
	}
}

func TestFilesOf(t *testing.T) {
	lookup := env(map[string]string{"SystemRoot": `C:\Windows`})
	files, known := filesOf(WriterIdentity{Files: []FileDesc{{Path: `%SystemRoot%\System32\config`, Filespec: "SAM"}, {Path: `D:\x`, Recursive: true}}}, lookup)
	if !known || len(files) != 2 || files[0].Path != `C:\Windows\System32\config` || files[0].Filespec != "SAM" || !files[1].Recursive {
		t.Fatalf("files %+v, known %v", files, known)
	}
	for name, id := range map[string]WriterIdentity{
		"none":          {},
		"unset env":     {Files: []FileDesc{{Path: `D:\x`}, {Path: `%NoSuchVar%\x`}}},
		"volume GUID":   {Files: []FileDesc{{Path: `\\?\Volume{3a7b1c2d-0000-0000-0000-100000000000}\x`}}},
		"metadata fail": {Files: []FileDesc{{Path: `D:\x`}}, FilesError: E_UNEXPECTED},
	} {
		if files, known := filesOf(id, lookup); known || files != nil {
			t.Errorf("%s: %+v known %v, want not known", name, files, known)
		}
	}
}
