package image

import (
	"io/fs"
	"sort"
)

// recipe says how to build one base template.
type recipe struct {
	Name      string
	Packages  packageInputs
	Files     []file // added to the root file system (besides envd)
	MinSize   int64  // smallest rootfs.ext4, bytes (the file is sparse)
	VCPUs     int    // defaults for sandboxes made from it
	MemoryMiB int
}

// file is one file the builder writes into a root file system.
type file struct {
	Path string
	Mode fs.FileMode
	Data string
}

// EnvdPath is where envd is installed in every base template; GUEST.md
// names it as init.
const EnvdPath = "/usr/local/bin/envd"

// Debian archive the base templates come from. Security updates are
// included: these images run untrusted code that talks to the internet.
const debianSuite = "bookworm"

func debianSources() []string {
	return []string{
		"deb http://deb.debian.org/debian bookworm main",
		"deb http://deb.debian.org/debian bookworm-updates main",
		"deb http://deb.debian.org/debian-security bookworm-security main",
	}
}

const gib = 1 << 30

// recipes returns every base template this builder knows, by name.
func recipes() map[string]recipe {
	return map[string]recipe{
		"minimal": {
			Name: "minimal",
			Packages: packageInputs{
				Suite:    debianSuite,
				Variant:  "minbase",
				Sources:  debianSources(),
				Packages: []string{"bash", "coreutils", "procps", "iproute2", "curl", "ca-certificates", "python3", "git", "vim-tiny"},
			},
			Files:     baseFiles("wrenn"),
			MinSize:   2 * gib,
			VCPUs:     1,
			MemoryMiB: 512,
		},
	}
}

// BaseNames lists the base templates EnsureBase can build.
func BaseNames() []string {
	var names []string
	for n := range recipes() {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// baseFiles are the files every base template gets. envd rewrites
// /etc/hostname's effect and /etc/resolv.conf at boot (GUEST.md); these
// are what a sandbox sees before it does.
func baseFiles(hostname string) []file {
	return []file{
		{Path: "/etc/hostname", Mode: 0o644, Data: hostname + "\n"},
		{Path: "/etc/hosts", Mode: 0o644, Data: "127.0.0.1\tlocalhost\n" +
			"::1\t\tlocalhost ip6-localhost ip6-loopback\n" +
			"ff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n"},
		{Path: "/etc/resolv.conf", Mode: 0o644, Data: ""},
	}
}
