package httpapi_test

import (
	"fmt"
	"testing"

	"github.com/wrennhq/wrenn/internal/store/storetest"
)

// TestCrossTeam checks that team B's key gets 404 on every one of team A's
// sandbox and snapshot paths, and sees none of them in lists.
func TestCrossTeam(t *testing.T) {
	for _, engine := range storetest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, engine, envOptions{agent: fakeHost()})
			keyA := e.newKey(e.signup("a@example.com").Token)
			keyB := e.newKey(e.signup("b@example.com").Token)

			var running, paused, toSnap sandboxResp
			e.must(201, "POST", "/v1/sandboxes", apiKey(keyA), map[string]any{"template": "minimal"}, &running)
			e.must(201, "POST", "/v1/sandboxes", apiKey(keyA), map[string]any{"template": "minimal"}, &paused)
			e.must(200, "POST", "/v1/sandboxes/"+paused.ID+"/pause", apiKey(keyA), nil, nil)
			e.must(201, "POST", "/v1/sandboxes", apiKey(keyA), map[string]any{"template": "minimal"}, &toSnap)
			e.must(201, "POST", "/v1/snapshots", apiKey(keyA), map[string]any{"sandbox_id": toSnap.ID, "name": "a-snap"}, nil)

			multipart := func(path string) string {
				return fmt.Sprintf("--b\r\nContent-Disposition: form-data; name=\"path\"\r\n\r\n%s\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\nhi\r\n--b--\r\n", path)
			}
			for _, id := range []string{running.ID, paused.ID} {
				for _, tc := range []struct {
					method, path string
					body         any
					h            hdr
				}{
					{"GET", "/v1/sandboxes/" + id, nil, nil},
					{"DELETE", "/v1/sandboxes/" + id, nil, nil},
					{"POST", "/v1/sandboxes/" + id + "/exec", map[string]any{"cmd": "echo"}, nil},
					{"GET", "/v1/sandboxes/" + id + "/exec/stream", nil, nil},
					{"POST", "/v1/sandboxes/" + id + "/pause", nil, nil},
					{"POST", "/v1/sandboxes/" + id + "/ping", nil, nil},
					{"POST", "/v1/sandboxes/" + id + "/resume", nil, nil},
					{"POST", "/v1/sandboxes/" + id + "/files/read", map[string]any{"path": "/etc/hostname"}, nil},
					{"POST", "/v1/sandboxes/" + id + "/files/stream/read", map[string]any{"path": "/etc/hostname"}, nil},
					{"POST", "/v1/sandboxes/" + id + "/files/write", multipart("/tmp/x"), hdr{"Content-Type": "multipart/form-data; boundary=b"}},
					{"POST", "/v1/sandboxes/" + id + "/files/stream/write", multipart("/tmp/x"), hdr{"Content-Type": "multipart/form-data; boundary=b"}},
					{"POST", "/v1/sandboxes/" + id + "/files/list", map[string]any{"path": "/"}, nil},
					{"POST", "/v1/sandboxes/" + id + "/files/mkdir", map[string]any{"path": "/tmp/d"}, nil},
					{"POST", "/v1/sandboxes/" + id + "/files/remove", map[string]any{"path": "/tmp"}, nil},
					{"POST", "/v1/sandboxes/" + id + "/files/stat", map[string]any{"path": "/tmp"}, nil},
					{"POST", "/v1/sandboxes/" + id + "/files/move", map[string]any{"source": "/tmp", "destination": "/t"}, nil},
					{"POST", "/v1/snapshots", map[string]any{"sandbox_id": id}, nil},
					{"GET", "/v1/capsules/" + id, nil, nil},
					{"DELETE", "/v1/capsules/" + id, nil, nil},
					{"POST", "/v1/capsules/" + id + "/exec", map[string]any{"cmd": "echo"}, nil},
					{"POST", "/v1/capsules/" + id + "/files/list", map[string]any{"path": "/"}, nil},
				} {
					h := apiKey(keyB)
					for k, v := range tc.h {
						h[k] = v
					}
					if got, body := e.do(tc.method, tc.path, h, tc.body); got != 404 || errCode(t, body) != "not_found" {
						t.Errorf("team B: %s %s = %d %s, want 404", tc.method, tc.path, got, body)
					}
				}
			}
			if got, body := e.do("DELETE", "/v1/snapshots/a-snap", apiKey(keyB), nil); got != 404 {
				t.Errorf("team B deletes team A's snapshot: %d %s", got, body)
			}

			var sbs []sandboxResp
			e.must(200, "GET", "/v1/sandboxes", apiKey(keyB), nil, &sbs)
			if len(sbs) != 0 {
				t.Errorf("team B lists %d of team A's sandboxes", len(sbs))
			}
			var tmpls []struct{ Name, Type string }
			e.must(200, "GET", "/v1/snapshots", apiKey(keyB), nil, &tmpls)
			for _, tm := range tmpls {
				if tm.Type != "base" {
					t.Errorf("team B lists template %+v", tm)
				}
			}
			e.must(200, "GET", "/v1/snapshots?type=snapshot", apiKey(keyB), nil, &tmpls)
			if len(tmpls) != 0 {
				t.Errorf("team B lists snapshots %+v", tmpls)
			}
			// Team B can use the name for its own snapshot: names are per team.
			var own sandboxResp
			e.must(201, "POST", "/v1/sandboxes", apiKey(keyB), map[string]any{}, &own)
			e.must(201, "POST", "/v1/snapshots", apiKey(keyB), map[string]any{"sandbox_id": own.ID, "name": "a-snap"}, nil)

			// Team A still sees all of its own, untouched.
			// The one the snapshot consumed is stopped: listed only when asked for.
			e.must(200, "GET", "/v1/sandboxes", apiKey(keyA), nil, &sbs)
			if len(sbs) != 2 {
				t.Errorf("team A lists %d sandboxes, want 2", len(sbs))
			}
			e.must(200, "GET", "/v1/sandboxes?status=running,paused&status=stopped", apiKey(keyA), nil, &sbs)
			if len(sbs) != 3 {
				t.Errorf("team A lists %d sandboxes of any status, want 3", len(sbs))
			}
			var a []struct{ Name string }
			e.must(200, "GET", "/v1/snapshots?type=snapshot", apiKey(keyA), nil, &a)
			if len(a) != 1 || a[0].Name != "a-snap" {
				t.Errorf("team A snapshots %+v", a)
			}
			e.must(200, "GET", "/v1/sandboxes/"+running.ID, apiKey(keyA), nil, nil)
		})
	}
}
