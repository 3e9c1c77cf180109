package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/wrennhq/wrenn/api"
)

// TestExtendsContract keeps the embedded spec a superset of the customer's
// contract in shared/, where a checkout has it beside it: every operation
// of the contract is there unchanged (its path's parameters too), and so
// is every component schema. Wrenn's own operations and schemas come on
// top.
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
		if !sameJSON(t, item.Parameters, got.Parameters) {
			t.Errorf("%s: parameters differ from the contract", path)
		}
		for method, op := range item.Operations() {
			if !sameJSON(t, op, got.GetOperation(method)) {
				t.Errorf("%s %s differs from the contract", method, path)
			}
		}
	}
	for name, schema := range seed.Components.Schemas {
		if !sameJSON(t, schema, ours.Components.Schemas[name]) {
			t.Errorf("schema %s differs from the contract", name)
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
