package image

import (
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// mustWrite writes a file, creating its directory.
func mustWrite(tb testing.TB, path, data string) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		tb.Fatal(err)
	}
}

func mustRead(tb testing.TB, path string) string {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// names lists a directory, sorted.
func names(tb testing.TB, dir string) []string {
	tb.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		tb.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

func TestInstallDir(t *testing.T) {
	tests := []struct {
		name string
		old  map[string]string // files in target before; nil: no target
	}{
		{"fresh", nil},
		{"replaces", map[string]string{"rootfs.ext4": "old", "stray": "x"}},
		{"replaces empty dir", map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := t.TempDir()
			target := filepath.Join(parent, "minimal")
			if tt.old != nil {
				os.Mkdir(target, 0o755)
				for n, d := range tt.old {
					mustWrite(t, filepath.Join(target, n), d)
				}
			}
			tmp, err := tempBeside(target)
			if err != nil {
				t.Fatal(err)
			}
			mustWrite(t, filepath.Join(tmp, "rootfs.ext4"), "new")
			if err := installDir(tmp, target); err != nil {
				t.Fatal(err)
			}
			if got := mustRead(t, filepath.Join(target, "rootfs.ext4")); got != "new" {
				t.Fatalf("rootfs = %q, want new", got)
			}
			if got := names(t, target); len(got) != 1 {
				t.Fatalf("target holds %v, want only rootfs.ext4", got)
			}
			if got := names(t, parent); len(got) != 1 || got[0] != "minimal" {
				t.Fatalf("parent holds %v, want only minimal", got)
			}
		})
	}
}

func TestCleanStale(t *testing.T) {
	tests := []struct {
		name   string
		before []string // dirs to create; each holds a file "f" with its own name
		after  []string
		// file "f" in after[i] must hold from[i] (where it came from)
		from []string
	}{
		{"nothing to do", []string{"minimal"}, []string{"minimal"}, []string{"minimal"}},
		{"temp dirs removed", []string{"minimal", ".minimal.tmp-1", ".tmp-kernel-2", "x.tar.tmp-3"}, []string{"minimal"}, []string{"minimal"}},
		{"old removed when target exists", []string{"minimal", ".minimal.old-1"}, []string{"minimal"}, []string{"minimal"}},
		{"old restored when target missing", []string{".minimal.old-1", ".minimal.tmp-2"}, []string{"minimal"}, []string{".minimal.old-1"}},
		{"missing dir", nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "base")
			for _, n := range tt.before {
				mustWrite(t, filepath.Join(dir, n, "f"), n)
			}
			if err := cleanStale(dir); err != nil {
				t.Fatal(err)
			}
			got := names(t, dir)
			if len(got) != len(tt.after) {
				t.Fatalf("after clean: %v, want %v", got, tt.after)
			}
			for i, n := range tt.after {
				if got[i] != n {
					t.Fatalf("after clean: %v, want %v", got, tt.after)
				}
				if f := mustRead(t, filepath.Join(dir, n, "f")); f != tt.from[i] {
					t.Fatalf("%s came from %s, want %s", n, f, tt.from[i])
				}
			}
		})
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "manifest.json")
	for _, data := range []string{"one", "two"} {
		if err := writeFileAtomic(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := mustRead(t, p); got != data {
			t.Fatalf("got %q, want %q", got, data)
		}
	}
	if got := names(t, dir); len(got) != 1 {
		t.Fatalf("dir holds %v, want only manifest.json", got)
	}
}

func TestUnescapeMount(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/a/b", "/a/b"},
		{`/a\040b`, "/a b"},
		{`/a\134b`, `/a\b`},
		{`/a\04`, `/a\04`},
		{`/a\xyz`, `/a\xyz`},
	}
	for _, tt := range tests {
		if got := unescapeMount(tt.in); got != tt.want {
			t.Errorf("unescapeMount(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
