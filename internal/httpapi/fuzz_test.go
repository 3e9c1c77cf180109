package httpapi_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/wrennhq/wrenn/internal/store/storetest"
)

// jsonRoutes are every endpoint that takes a JSON body, with the fields
// they read. {id} is replaced by a real sandbox of the caller's.
var jsonRoutes = []struct {
	path   string
	auth   string // "", "jwt" or "key"
	fields []string
}{
	{"/v1/auth/signup", "", []string{"email", "password"}},
	{"/v1/auth/login", "", []string{"email", "password"}},
	{"/v1/api-keys", "jwt", []string{"name"}},
	{"/v1/sandboxes", "key", []string{"template", "vcpus", "memory_mb", "timeout_sec"}},
	{"/v1/sandboxes/{id}/exec", "key", []string{"cmd", "args", "timeout_sec", "env", "cwd"}},
	{"/v1/sandboxes/{id}/files/read", "key", []string{"path"}},
	{"/v1/sandboxes/{id}/files/stream/read", "key", []string{"path"}},
	{"/v1/snapshots", "key", []string{"sandbox_id", "name"}},
}

type fuzzTarget struct {
	e     *env
	token string
	key   string
	sbID  string
}

func newFuzzTarget(tb testing.TB, o envOptions) *fuzzTarget {
	o.agent = fakeHost()
	e := newEnv(tb, storetest.Engines(tb)[0], o)
	a := e.signup("fuzz@example.com")
	key := e.newKey(a.Token)
	var sb sandboxResp
	e.must(201, "POST", "/v1/sandboxes", apiKey(key), map[string]any{}, &sb)
	return &fuzzTarget{e: e, token: a.Token, key: key, sbID: sb.ID}
}

// post sends body to route i and returns a complaint unless the answer is
// below 500 and, when an error, the envelope.
func (f *fuzzTarget) post(i int, body []byte, contentType string) string {
	r := jsonRoutes[i%len(jsonRoutes)]
	h := hdr{}
	switch r.auth {
	case "jwt":
		h = bearer(f.token)
	case "key":
		h = apiKey(f.key)
	}
	if contentType != "" {
		h["Content-Type"] = contentType
	}
	status, out, err := f.e.send("POST", strings.ReplaceAll(r.path, "{id}", f.sbID), h, body)
	if err != nil {
		return fmt.Sprintf("POST %s: %v", r.path, err)
	}
	if status >= 500 {
		return fmt.Sprintf("POST %s with %q: %d %s", r.path, body, status, out)
	}
	if status >= 400 && !isEnvelope(out) {
		return fmt.Sprintf("POST %s with %q: %d without the envelope: %s", r.path, body, status, out)
	}
	return ""
}

func isEnvelope(b []byte) bool {
	var env struct {
		Error *struct{ Code, Message string } `json:"error"`
	}
	return json.Unmarshal(b, &env) == nil && env.Error != nil && env.Error.Code != "" && env.Error.Message != ""
}

// TestMalformedBodies is a property test: whatever body any JSON endpoint
// gets, it answers below 500 and errors come in the envelope. (The spec
// checks in env validate every answer too.)
func TestMalformedBodies(t *testing.T) {
	f := newFuzzTarget(t, envOptions{})
	for i, r := range jsonRoutes {
		t.Run(strings.TrimPrefix(r.path, "/v1/"), func(t *testing.T) {
			rapid.Check(t, func(rt *rapid.T) {
				body := rapid.OneOf(
					rapid.SliceOfN(rapid.Byte(), 0, 64),                                            // noise
					rapid.Map(fieldObject(r.fields), marshal[map[string]any]),                      // right shape, wild values
					rapid.Map(rapid.Map(fieldObject(r.fields), marshal[map[string]any]), truncate), // cut short
					rapid.Map(jsonValue(3), marshal[any]),                                          // any JSON at all
					rapid.Just([]byte(strings.Repeat("[", 10000))),                                 // deep nesting
					rapid.Just([]byte(`{"a":`+strings.Repeat(`"x",`, 2000)+`}`)),
				).Draw(rt, "body")
				ct := rapid.SampledFrom([]string{"", "application/json", "application/json; charset=utf-8", "text/plain", "multipart/form-data", ";;"}).Draw(rt, "content-type")
				if p := f.post(i, body, ct); p != "" {
					rt.Fatal(p)
				}
			})
		})
	}
}

// FuzzJSONBodies is the coverage-guided version:
// go test ./internal/httpapi -run '^$' -fuzz FuzzJSONBodies -fuzztime 60s
func FuzzJSONBodies(f *testing.F) {
	for i := range jsonRoutes {
		f.Add(i, []byte(`{}`))
		f.Add(i, []byte(`{"email":"a@b.c","password":"12345678","vcpus":2,"cmd":"ls","args":["-l"],"path":"/x"}`))
		f.Add(i, []byte(`{"vcpus":"x","args":{},"path":7}`))
		f.Add(i, []byte(`nul`))
	}
	// Spec checks report to the enclosing test, which a fuzz target must
	// not touch; post checks the envelope itself.
	target := newFuzzTarget(f, envOptions{noValidate: true})
	f.Fuzz(func(t *testing.T, route int, body []byte) {
		if route < 0 {
			route = -route
		}
		if p := target.post(route, body, "application/json"); p != "" {
			t.Fatal(p)
		}
	})
}

func marshal[T any](v T) []byte {
	b, _ := json.Marshal(v)
	return b
}

func truncate(b []byte) []byte { return b[:len(b)/2] }

func fieldObject(fields []string) *rapid.Generator[map[string]any] {
	key := rapid.OneOf(rapid.SampledFrom(fields), rapid.String())
	return rapid.MapOfN(key, jsonValue(2), 0, len(fields)+2)
}

func jsonValue(depth int) *rapid.Generator[any] {
	scalars := []*rapid.Generator[any]{
		rapid.Just[any](nil),
		rapid.Bool().AsAny(),
		rapid.Int().AsAny(),
		rapid.Float64().AsAny(),
		rapid.String().AsAny(),
		rapid.SampledFrom([]any{"", "/", "/tmp/x", "a@b.c", "minimal", -1, 0, 1, 8193, 1e300, "wrn_"}),
	}
	if depth == 0 {
		return rapid.OneOf(scalars...)
	}
	return rapid.OneOf(append(scalars,
		rapid.SliceOfN(jsonValue(depth-1), 0, 4).AsAny(),
		rapid.MapOfN(rapid.String(), jsonValue(depth-1), 0, 4).AsAny(),
	)...)
}
