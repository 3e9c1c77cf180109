package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/wrennhq/wrenn/api"
)

// TestExtendsContract keeps the embedded spec a compatible extension of
// the customer's contract in shared/, where a checkout has it beside it:
// every operation of the contract is there (its path's parameters too),
// and so is every component schema, each changed only in ways a client of
// the contract cannot notice (extends). Wrenn's own operations and schemas
// come on top.
func TestExtendsContract(t *testing.T) {
	src, err := os.ReadFile("../../shared/spec/openapi.yaml")
	if errors.Is(err, fs.ErrNotExist) {
		t.Skip("shared/spec/openapi.yaml is not beside this checkout")
	}
	if err != nil {
		t.Fatal(err)
	}
	seed, ours := mustLoad(t, src), mustLoad(t, api.OpenAPI)
	for path, item := range seed.Paths.Map() {
		got := ours.Paths.Value(path)
		if got == nil {
			t.Errorf("%s: missing", path)
			continue
		}
		if p := extends(t, item.Parameters, got.Parameters); p != "" {
			t.Errorf("%s: parameters: %s", path, p)
		}
		for method, op := range item.Operations() {
			if p := extends(t, op, got.GetOperation(method)); p != "" {
				t.Errorf("%s %s: %s", method, path, p)
			}
		}
	}
	for name, schema := range seed.Components.Schemas {
		if p := extendsValue(name, asJSON(t, schema), asJSON(t, ours.Components.Schemas[name])); p != "" {
			t.Errorf("schema %s: %s", name, p)
		}
	}
	for name, scheme := range seed.Components.SecuritySchemes {
		if !sameJSON(t, scheme, ours.Components.SecuritySchemes[name]) {
			t.Errorf("security scheme %s differs from the contract", name)
		}
	}
}

// TestSpecValid: the spec loads and validates as OpenAPI.
func TestSpecValid(t *testing.T) {
	doc := mustLoad(t, api.OpenAPI)
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func mustLoad(tb testing.TB, data []byte) *openapi3.T {
	tb.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(data)
	if err != nil {
		tb.Fatal(err)
	}
	return doc
}

// additive names the maps of a spec where an extension may add entries: a
// new optional property, a new response status, a new media type. Every
// other key of an object (required, additionalProperties, a bound) must be
// as the contract has it, so that what it accepts and returns stays valid.
var additive = map[string]bool{"properties": true, "responses": true, "content": true}

// laterValues are values an enum of a contract schema gains from the
// product's later release (shared/spec/wrenn-v0.1.5.openapi.yaml), by
// where they are: Wrenn returns them where 0.1.5 does, after the
// contract's own.
var laterValues = map[string][]any{
	// 0.1.5's sandbox (Capsule) status: a sandbox of a lost host (issue 13).
	"Sandbox/properties/status/enum": {"missing"},
}

// extends reports how ours fails to be a compatible extension of seed, or
// "" if it is one: both as JSON, ours holds everything seed holds, adding
// only entries of additive maps, descriptions, and parameters that are not
// required.
func extends(tb testing.TB, seed, ours any) string {
	tb.Helper()
	return extendsValue("", asJSON(tb, seed), asJSON(tb, ours))
}

func asJSON(tb testing.TB, v any) any {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		tb.Fatal(err)
	}
	return out
}

// optionalOnly reports whether v is a list of parameters none of which is
// required.
func optionalOnly(v any) bool {
	list, ok := v.([]any)
	if !ok {
		return false
	}
	for _, p := range list {
		if m, _ := p.(map[string]any); m["required"] == true {
			return false
		}
	}
	return true
}

func extendsValue(at string, seed, ours any) string {
	switch s := seed.(type) {
	case map[string]any:
		o, ok := ours.(map[string]any)
		if !ok {
			return at + ": not an object"
		}
		for k, sv := range s {
			ov, ok := o[k]
			if !ok {
				return at + "/" + k + ": missing"
			}
			if p := extendsValue(at+"/"+k, sv, ov); p != "" {
				return p
			}
		}
		key := at[strings.LastIndexByte(at, '/')+1:]
		for k, ov := range o {
			if _, ok := s[k]; ok || additive[key] || k == "description" {
				continue
			}
			if k == "parameters" && optionalOnly(ov) {
				continue
			}
			return at + "/" + k + ": added"
		}
		return ""
	case []any:
		o, ok := ours.([]any)
		if !ok {
			return at + ": not an array"
		}
		if strings.HasSuffix(at, "/parameters") || at == "" {
			// Parameters: the contract's, in order, then optional ones.
			if len(o) < len(s) {
				return at + ": parameters missing"
			}
			for i := range s {
				if p := extendsValue(fmt.Sprintf("%s/%d", at, i), s[i], o[i]); p != "" {
					return p
				}
			}
			for _, extra := range o[len(s):] {
				if m, _ := extra.(map[string]any); m["required"] == true {
					return at + ": a required parameter added"
				}
			}
			return ""
		}
		if later, ok := laterValues[at]; ok && len(o) == len(s)+len(later) && reflect.DeepEqual(o[len(s):], later) {
			o = o[:len(s)]
		}
		if strings.HasSuffix(at, "/security") && len(o) > len(s) {
			// Security requirements are alternatives: the contract's, then
			// more ways in (a JWT beside an API key).
			o = o[:len(s)]
		}
		if len(o) != len(s) {
			return at + ": changed"
		}
		for i := range s {
			if p := extendsValue(fmt.Sprintf("%s/%d", at, i), s[i], o[i]); p != "" {
				return p
			}
		}
		return ""
	}
	if !reflect.DeepEqual(seed, ours) {
		return fmt.Sprintf("%s: %v, the contract has %v", at, ours, seed)
	}
	return ""
}

// sameJSON compares two parts of specs as they encode: references as
// references, not what they point to.
func sameJSON(tb testing.TB, a, b any) bool {
	tb.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		tb.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		tb.Fatal(err)
	}
	return bytes.Equal(ja, jb)
}

// TestExtendsSecurity: more ways to authenticate extend an operation;
// dropping or changing the contract's does not.
func TestExtendsSecurity(t *testing.T) {
	seed := `{"security":[{"apiKeyAuth":[]}]}`
	for ours, ok := range map[string]bool{
		seed: true,
		`{"security":[{"apiKeyAuth":[]},{"bearerAuth":[]}]}`: true,
		`{"security":[{"bearerAuth":[]}]}`:                   false,
		`{"security":[{"bearerAuth":[]},{"apiKeyAuth":[]}]}`: false,
		`{"security":[]}`: false,
	} {
		var s, o any
		if err := json.Unmarshal([]byte(seed), &s); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(ours), &o); err != nil {
			t.Fatal(err)
		}
		if got := extendsValue("", s, o); (got == "") != ok {
			t.Errorf("%s: %q, want ok=%v", ours, got, ok)
		}
	}
}

// TestExtendsCatchesBreaks: the extension rule lets through only changes a
// client of the contract cannot notice.
func TestExtendsCatchesBreaks(t *testing.T) {
	seed := `{"type":"object","required":["cmd"],"properties":{"cmd":{"type":"string"}},"parameters":[{"name":"a","required":true}]}`
	for _, tc := range []struct {
		ours string
		ok   bool
	}{
		{seed, true},
		{`{"type":"object","required":["cmd"],"description":"x","properties":{"cmd":{"type":"string"},"envs":{"type":"object"}},"parameters":[{"name":"a","required":true},{"name":"b"}]}`, true},
		{`{"type":"object","required":["cmd","envs"],"properties":{"cmd":{"type":"string"},"envs":{"type":"object"}},"parameters":[{"name":"a","required":true}]}`, false},
		{`{"type":"object","required":["cmd"],"properties":{"cmd":{"type":"integer"}},"parameters":[{"name":"a","required":true}]}`, false},
		{`{"type":"object","required":["cmd"],"additionalProperties":false,"properties":{"cmd":{"type":"string"}},"parameters":[{"name":"a","required":true}]}`, false},
		{`{"type":"object","required":["cmd"],"properties":{"cmd":{"type":"string"}},"parameters":[{"name":"a","required":true},{"name":"b","required":true}]}`, false},
		{`{"type":"object","required":["cmd"],"properties":{},"parameters":[{"name":"a","required":true}]}`, false},
	} {
		var s, o any
		if err := json.Unmarshal([]byte(seed), &s); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(tc.ours), &o); err != nil {
			t.Fatal(err)
		}
		if p := extendsValue("", s, o); (p == "") != tc.ok {
			t.Errorf("%s: problem %q, want ok=%v", tc.ours, p, tc.ok)
		}
	}
	op := map[string]any{"get": map[string]any{"summary": "list"}}
	withParams := func(required bool) any {
		return map[string]any{"get": map[string]any{"summary": "list",
			"parameters": []any{map[string]any{"name": "status", "required": required}}}}
	}
	if p := extendsValue("", op, withParams(false)); p != "" {
		t.Errorf("an optional parameter on an operation without any: %s", p)
	}
	if p := extendsValue("", op, withParams(true)); p == "" {
		t.Error("a required parameter on an operation without any passed")
	}
}
