package image

import (
	"errors"
	"fmt"
	"strings"
)

// ErrMissingTools is wrapped by the error a build returns when the host
// lacks something it needs; the message names each thing and its package.
var ErrMissingTools = errors.New("missing host tools")

// Packages returns the Debian packages the builder needs on the host. The
// Go toolchain (to build envd) is not among them: Wrenn is built with it.
func Packages() []string {
	return []string{
		// the guest kernel
		"linux-source-6.1", "build-essential", "bc", "bison", "flex",
		"libelf-dev", "libssl-dev", "cpio", "xz-utils", "tar",
		// base templates
		"mmdebstrap", "debian-archive-keyring", "e2fsprogs",
	}
}

// requirement is one thing a build needs from the host.
type requirement struct {
	What string // a command name, or a file path
	Pkg  string // the Debian package that provides it
	File bool   // What is a file, not a command
}

// kernelSourcePath is the tarball linux-source-6.1 installs.
const kernelSourcePath = "/usr/src/linux-source-6.1.tar.xz"

func kernelRequirements(source string) []requirement {
	return []requirement{
		{What: source, Pkg: "linux-source-6.1", File: true},
		{What: "make", Pkg: "build-essential"},
		{What: "gcc", Pkg: "build-essential"},
		{What: "ld", Pkg: "build-essential"},
		{What: "bc", Pkg: "bc"},
		{What: "bison", Pkg: "bison"},
		{What: "flex", Pkg: "flex"},
		{What: "xz", Pkg: "xz-utils"},
		{What: "tar", Pkg: "tar"},
		{What: "perl", Pkg: "perl"},
		{What: "/usr/include/libelf.h", Pkg: "libelf-dev", File: true},
	}
}

func rootfsRequirements() []requirement {
	return []requirement{
		{What: "mmdebstrap", Pkg: "mmdebstrap"},
		{What: "/usr/share/keyrings/debian-archive-keyring.gpg", Pkg: "debian-archive-keyring", File: true},
		{What: "tar", Pkg: "tar"},
		{What: "mkfs.ext4", Pkg: "e2fsprogs"},
	}
}

// check returns an error naming every requirement the host lacks, and
// the apt-get line that installs them.
func (b *Builder) check(reqs []requirement) error {
	var missing, pkgs []string
	seen := map[string]bool{}
	for _, r := range reqs {
		if r.File && b.fileExists(r.What) {
			continue
		}
		if !r.File {
			if _, err := b.lookPath(r.What); err == nil {
				continue
			}
		}
		missing = append(missing, fmt.Sprintf("%s (package %s)", r.What, r.Pkg))
		if !seen[r.Pkg] {
			seen[r.Pkg] = true
			pkgs = append(pkgs, r.Pkg)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s; install them with: apt-get install %s",
		ErrMissingTools, strings.Join(missing, ", "), strings.Join(pkgs, " "))
}

// checkRoot fails unless the builder runs as root: unpacking a root file
// system with its owners, and mmdebstrap's chroot, need it.
func (b *Builder) checkRoot() error {
	if b.euid() != 0 {
		return fmt.Errorf("%w: building a base template needs root (to keep file owners in the image)", ErrMissingTools)
	}
	return nil
}

// goTool finds the go command: on PATH, or where the Go tarball installs it.
func (b *Builder) goTool() (string, error) {
	for _, name := range []string{"go", "/usr/local/go/bin/go"} {
		if p, err := b.lookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: go (the Go toolchain, to build envd; not on PATH or in /usr/local/go/bin)", ErrMissingTools)
}
