package e2e

import (
	"strings"
	"testing"
)

type fileEntry struct {
	Name          string  `json:"name"`
	Path          string  `json:"path"`
	Type          string  `json:"type"`
	Size          int64   `json:"size"`
	Mode          int     `json:"mode"`
	Permissions   string  `json:"permissions"`
	Owner         string  `json:"owner"`
	Group         string  `json:"group"`
	ModifiedAt    int64   `json:"modified_at"`
	SymlinkTarget *string `json:"symlink_target"`
}

// TestFileSystem drives issue 11's file system operations through the
// public API against a real guest: mkdir with parents, uploads, list at
// depths, stat, move, recursive remove, the 400/404/409 cases, and
// another team's 404.
func TestFileSystem(t *testing.T) {
	s := startVMServer(t, shortTempDir(t))
	key := s.account("files@example.com")
	other := s.account("files-other@example.com")
	sb := s.create(key, map[string]any{"template": "minimal", "vcpus": 1, "memory_mb": 512, "timeout_sec": 600})
	base := "/v1/sandboxes/" + sb.ID + "/files/"

	var made struct{ Entry fileEntry }
	s.must(200, "POST", base+"mkdir", key, map[string]any{"path": "/root/w/a/b"}, &made)
	if e := made.Entry; e.Type != "directory" || e.Path != "/root/w/a/b" || e.Name != "b" || e.Permissions != "drwxr-xr-x" || e.Owner != "root" || e.ModifiedAt == 0 {
		t.Errorf("mkdir -p: %+v", e)
	}
	upload(t, s, key, sb.ID, "write", "/root/w/a/b/deep.bin", 1000)
	upload(t, s, key, sb.ID, "write", "/root/w/top.bin", 10)
	if r := s.exec(key, sb.ID, "ln -s top.bin /root/w/link"); r.ExitCode != 0 {
		t.Fatalf("ln: %+v", r)
	}

	list := func(depth any) []string {
		t.Helper()
		body := map[string]any{"path": "/root/w"}
		if depth != nil {
			body["depth"] = depth
		}
		var out struct{ Entries []fileEntry }
		s.must(200, "POST", base+"list", key, body, &out)
		var got []string
		for _, e := range out.Entries {
			got = append(got, strings.TrimPrefix(e.Path, "/root/w/")+":"+e.Type)
			switch e.Name {
			case "deep.bin":
				if e.Size != 1000 || e.Permissions != "-rw-r--r--" || e.Mode != 0o644 {
					t.Errorf("deep.bin: %+v", e)
				}
			case "link":
				if e.SymlinkTarget == nil || *e.SymlinkTarget != "top.bin" {
					t.Errorf("link: %+v", e)
				}
			}
		}
		return got
	}
	for _, tc := range []struct {
		depth any
		want  string
	}{
		{nil, "a:directory link:symlink top.bin:file"},
		{0, "a:directory link:symlink top.bin:file"},
		{2, "a:directory a/b:directory link:symlink top.bin:file"},
		{5, "a:directory a/b:directory a/b/deep.bin:file link:symlink top.bin:file"},
	} {
		if got := strings.Join(list(tc.depth), " "); got != tc.want {
			t.Errorf("list depth %v: %s; want %s", tc.depth, got, tc.want)
		}
	}

	var st struct{ Entry fileEntry }
	s.must(200, "POST", base+"stat", key, map[string]any{"path": "/root/w/top.bin"}, &st)
	if st.Entry.Size != 10 || st.Entry.Type != "file" {
		t.Errorf("stat: %+v", st.Entry)
	}
	var mv struct{ Entry fileEntry }
	s.must(200, "POST", base+"move", key, map[string]any{"source": "/root/w/a", "destination": "/root/w/moved"}, &mv)
	if mv.Entry.Path != "/root/w/moved" || mv.Entry.Type != "directory" {
		t.Errorf("move: %+v", mv.Entry)
	}
	if r := s.exec(key, sb.ID, "test -f /root/w/moved/b/deep.bin && test ! -e /root/w/a"); r.ExitCode != 0 {
		t.Errorf("after move: %+v", r)
	}

	s.must(204, "POST", base+"remove", key, map[string]any{"path": "/root/w"}, nil)
	if r := s.exec(key, sb.ID, "test ! -e /root/w"); r.ExitCode != 0 {
		t.Errorf("/root/w outlived its remove: %+v", r)
	}

	for _, tc := range []struct {
		name, op string
		body     map[string]any
		key      hdr
		status   int
		code     string
	}{
		{"list relative", "list", map[string]any{"path": "root"}, key, 400, "invalid_request"},
		{"list negative depth", "list", map[string]any{"path": "/root", "depth": -1}, key, 400, "invalid_request"},
		{"list a file", "list", map[string]any{"path": "/etc/hostname"}, key, 400, "invalid_request"},
		{"list missing", "list", map[string]any{"path": "/root/w"}, key, 404, "not_found"},
		{"mkdir relative", "mkdir", map[string]any{"path": "x/y"}, key, 400, "invalid_request"},
		{"mkdir existing", "mkdir", map[string]any{"path": "/root"}, key, 409, "conflict"},
		{"mkdir without parents", "mkdir", map[string]any{"path": "/root/p/q", "parents": false}, key, 404, "not_found"},
		{"mkdir under a file", "mkdir", map[string]any{"path": "/etc/hostname/x"}, key, 400, "invalid_request"},
		{"remove missing", "remove", map[string]any{"path": "/root/w"}, key, 404, "not_found"},
		{"remove relative", "remove", map[string]any{"path": "root"}, key, 400, "invalid_request"},
		{"stat missing", "stat", map[string]any{"path": "/nope"}, key, 404, "not_found"},
		{"move missing", "move", map[string]any{"source": "/nope", "destination": "/nope2"}, key, 404, "not_found"},
		{"move onto existing", "move", map[string]any{"source": "/etc/hostname", "destination": "/etc/hosts"}, key, 409, "conflict"},
		{"another team lists", "list", map[string]any{"path": "/"}, other, 404, "not_found"},
		{"another team removes", "remove", map[string]any{"path": "/etc/hostname"}, other, 404, "not_found"},
		{"another team mkdirs", "mkdir", map[string]any{"path": "/root/x"}, other, 404, "not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, body := s.do("POST", base+tc.op, tc.key, tc.body)
			if got != tc.status || errorCode(t, body) != tc.code {
				t.Errorf("%s = %d %s; want %d %s", tc.op, got, body, tc.status, tc.code)
			}
		})
	}
	if r := s.exec(key, sb.ID, "test -f /etc/hostname && test ! -e /root/x"); r.ExitCode != 0 {
		t.Errorf("another team's calls changed the sandbox: %+v", r)
	}
	s.must(204, "DELETE", "/v1/sandboxes/"+sb.ID, key, nil, nil)
}
