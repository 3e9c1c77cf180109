package image

import (
	"testing"
)

func TestKeyerIsUnambiguous(t *testing.T) {
	a := newKeyer("t")
	a.add("x", "ab")
	a.add("y", "c")
	b := newKeyer("t")
	b.add("x", "a")
	b.add("y", "bc")
	if a.sum() == b.sum() {
		t.Fatal("field boundaries do not change the key")
	}
	if got := len(a.sum()); got != keyLen {
		t.Fatalf("key length = %d, want %d", got, keyLen)
	}
}

func TestKernelKey(t *testing.T) {
	base := kernelInputs{SourceVersion: "6.1.192-3", Fragment: []byte("CONFIG_SMP=y\n")}
	tests := []struct {
		name string
		in   kernelInputs
		same bool
	}{
		{"identical", kernelInputs{SourceVersion: "6.1.192-3", Fragment: []byte("CONFIG_SMP=y\n")}, true},
		{"new source", kernelInputs{SourceVersion: "6.1.193-1", Fragment: base.Fragment}, false},
		{"new fragment", kernelInputs{SourceVersion: base.SourceVersion, Fragment: []byte("CONFIG_SMP=n\n")}, false},
		{"fragment whitespace", kernelInputs{SourceVersion: base.SourceVersion, Fragment: []byte("CONFIG_SMP=y\n\n")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.key() == base.key(); got != tt.same {
				t.Fatalf("same key = %v, want %v", got, tt.same)
			}
		})
	}
}

func TestRootFSKey(t *testing.T) {
	pk := packageInputs{Suite: "bookworm", Variant: "minbase", Sources: []string{"deb a"}, Packages: []string{"bash", "curl"}}
	base := rootfsInputs{Packages: pk, EnvdSHA256: "e1", Files: baseFiles("wrenn"), MinSize: gib}
	with := func(f func(*rootfsInputs)) rootfsInputs {
		in := base
		in.Packages.Packages = append([]string(nil), pk.Packages...)
		in.Files = append([]file(nil), base.Files...)
		f(&in)
		return in
	}
	tests := []struct {
		name string
		in   rootfsInputs
		same bool
	}{
		{"identical", with(func(*rootfsInputs) {}), true},
		{"package order", with(func(in *rootfsInputs) { in.Packages.Packages = []string{"curl", "bash"} }), true},
		{"duplicate package", with(func(in *rootfsInputs) { in.Packages.Packages = []string{"curl", "bash", "curl"} }), true},
		{"new package", with(func(in *rootfsInputs) { in.Packages.Packages = append(in.Packages.Packages, "git") }), false},
		{"suite", with(func(in *rootfsInputs) { in.Packages.Suite = "trixie" }), false},
		{"variant", with(func(in *rootfsInputs) { in.Packages.Variant = "buildd" }), false},
		{"sources", with(func(in *rootfsInputs) { in.Packages.Sources = []string{"deb b"} }), false},
		{"envd", with(func(in *rootfsInputs) { in.EnvdSHA256 = "e2" }), false},
		{"file data", with(func(in *rootfsInputs) { in.Files[0].Data = "other\n" }), false},
		{"file mode", with(func(in *rootfsInputs) { in.Files[0].Mode = 0o600 }), false},
		{"file path", with(func(in *rootfsInputs) { in.Files[0].Path = "/etc/other" }), false},
		{"extra file", with(func(in *rootfsInputs) { in.Files = append(in.Files, file{Path: "/x"}) }), false},
		{"size", with(func(in *rootfsInputs) { in.MinSize = 2 * gib }), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.key() == base.key(); got != tt.same {
				t.Fatalf("same key = %v, want %v", got, tt.same)
			}
		})
	}
}

func TestPackagesKeyIgnoresEnvd(t *testing.T) {
	// The mmdebstrap tarball is keyed by packages alone: a new envd must
	// not download packages again.
	pk := recipes()["minimal"].Packages
	a := rootfsInputs{Packages: pk, EnvdSHA256: "a"}
	b := rootfsInputs{Packages: pk, EnvdSHA256: "b"}
	if a.Packages.key() != b.Packages.key() {
		t.Fatal("package key depends on envd")
	}
	if a.key() == b.key() {
		t.Fatal("rootfs key ignores envd")
	}
}

func TestBaseKey(t *testing.T) {
	if baseKey("r", "k1") == baseKey("r", "k2") {
		t.Fatal("base key ignores the kernel")
	}
	if baseKey("r1", "k") == baseKey("r2", "k") {
		t.Fatal("base key ignores the rootfs")
	}
}
