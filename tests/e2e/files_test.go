package e2e

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
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

// TestFileWatch: a watch through the public API sees the files an exec
// creates, writes, renames and removes, below the directory too when
// recursive; refusals come as statuses before the upgrade.
func TestFileWatch(t *testing.T) {
	s := startVMServer(t, shortTempDir(t))
	key := s.account("watch@example.com")
	other := s.account("watch-other@example.com")
	sb := s.create(key, map[string]any{"timeout_sec": 600})
	if r := s.exec(key, sb.ID, "mkdir -p /root/wt/sub"); r.ExitCode != 0 {
		t.Fatalf("mkdir: %+v", r)
	}
	dial := func(query string) *websocket.Conn {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ws, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.url, "http")+"/v1/sandboxes/"+sb.ID+"/files/watch?"+query,
			&websocket.DialOptions{HTTPHeader: http.Header{"X-Api-Key": {key["X-API-Key"]}}})
		if err != nil {
			t.Fatalf("dial watch %s: %v (%v)", query, err, resp)
		}
		return ws
	}
	type event struct{ Type, Op, Path, Data string }
	// collect reads events until every one of want has come, or 60 s.
	collect := func(ws *websocket.Conn, want ...string) []string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		var seen []string
		for {
			missing := false
			for _, w := range want {
				missing = missing || !slices.Contains(seen, w)
			}
			if !missing {
				return seen
			}
			var e event
			if err := wsjson.Read(ctx, ws, &e); err != nil {
				t.Fatalf("watch: %v; saw %v, want %v", err, seen, want)
			}
			if e.Type != "event" {
				t.Fatalf("watch sent %+v", e)
			}
			seen = append(seen, e.Op+" "+e.Path)
		}
	}

	rec := dial("path=/root/wt&recursive=true")
	defer rec.CloseNow()
	flat := dial("path=%2Froot%2Fwt")
	defer flat.CloseNow()
	if r := s.exec(key, sb.ID, "sh -c 'echo a > /root/wt/a; echo more >> /root/wt/a; mv /root/wt/a /root/wt/b; echo deep > /root/wt/sub/d; mkdir /root/wt/new; touch /root/wt/new/x; rm /root/wt/b'"); r.ExitCode != 0 {
		t.Fatalf("changes: %+v", r)
	}
	collect(rec, "create /root/wt/a", "write /root/wt/a", "rename /root/wt/a", "create /root/wt/b",
		"create /root/wt/sub/d", "create /root/wt/new", "create /root/wt/new/x", "remove /root/wt/b")
	seen := collect(flat, "create /root/wt/a", "rename /root/wt/a", "remove /root/wt/b", "create /root/wt/new")
	upload(t, s, key, sb.ID, "write", "/root/wt/up.bin", 100)
	seen = append(seen, collect(flat, "create /root/wt/up.bin")...)
	for _, e := range seen {
		if strings.Contains(e, "/root/wt/sub/") || strings.Contains(e, "/root/wt/new/") || strings.Contains(e, ".envd-") {
			t.Errorf("a watch that is not recursive saw %q", e)
		}
	}
	flat.Close(websocket.StatusNormalClosure, "")

	for _, tc := range []struct {
		query string
		h     hdr
		code  int
	}{
		{"path=relative", key, 400},
		{"path=/root/none", key, 404},
		{"path=/etc/hostname", key, 400},
		{"path=/root&recursive=maybe", key, 400},
		{"path=/root", other, 404},
	} {
		if code, body := s.do("GET", "/v1/sandboxes/"+sb.ID+"/files/watch?"+tc.query, tc.h, nil); code != tc.code {
			t.Errorf("%s: %d %s, want %d", tc.query, code, body, tc.code)
		}
	}
	// Destroying the sandbox ends the watch with an error message.
	s.must(204, "DELETE", "/v1/sandboxes/"+sb.ID, key, nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		var e event
		if err := wsjson.Read(ctx, rec, &e); err != nil {
			var ce websocket.CloseError
			if !errors.As(err, &ce) {
				t.Errorf("watch of a destroyed sandbox: %v", err)
			}
			break
		}
	}
}
