package layout_test

import (
	"strings"
	"testing"

	"github.com/wrennhq/wrenn/internal/layout"
)

func TestPaths(t *testing.T) {
	l := layout.New("/var/lib/wrenn")
	for _, tc := range []struct{ got, want string }{
		{l.DB(), "/var/lib/wrenn/wrenn.db"},
		{l.JWTSecret(), "/var/lib/wrenn/jwt-secret"},
		{l.Kernel("abc"), "/var/lib/wrenn/images/kernel/abc/vmlinux"},
		{l.BaseTemplate("minimal"), "/var/lib/wrenn/images/base/minimal"},
		{l.SnapshotTemplate("team-1", "snap"), "/var/lib/wrenn/templates/team-1/snap"},
		{l.Sandbox("sb-1").EnvdSocket(), "/var/lib/wrenn/sandboxes/sb-1/envd.sock"},
		{l.Sandbox("sb-1").DataSocket(), "/var/lib/wrenn/sandboxes/sb-1/data.sock"},
		{l.Sandbox("sb-1").Memory(), "/var/lib/wrenn/sandboxes/sb-1/mem"},
		{l.Template("team-1", "snap").Disk(), "/var/lib/wrenn/templates/team-1/snap/disk.qcow2"},
		{l.PinnedRootFS("k1"), "/var/lib/wrenn/images/pinned/k1.ext4"},
		{layout.Layout{Root: "/d", ImagesRoot: "/shared"}.BaseTemplate("minimal"), "/shared/base/minimal"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %s, want %s", tc.got, tc.want)
		}
	}
}

// TestSocketPathsFit checks that with a data dir of ordinary length every
// socket path fits in sun_path (108 bytes, NUL included).
func TestSocketPathsFit(t *testing.T) {
	l := layout.New("/var/lib/wrenn-data-dir-of-a-reasonable-length")
	sb := l.Sandbox("sb-" + strings.Repeat("x", 16))
	for _, p := range []string{sb.QMPSocket(), sb.EnvdSocket(), sb.DataSocket()} {
		if len(p) >= 108 {
			t.Errorf("%s is %d bytes: too long for a Unix socket", p, len(p))
		}
	}
}
