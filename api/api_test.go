package api_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"testing"

	"github.com/wrennhq/wrenn/api"
)

// TestCopyMatchesContract keeps the embedded copy identical to the
// customer's contract in shared/, where a checkout has it beside it.
func TestCopyMatchesContract(t *testing.T) {
	src, err := os.ReadFile("../../shared/spec/openapi.yaml")
	if errors.Is(err, fs.ErrNotExist) {
		t.Skip("shared/spec/openapi.yaml is not beside this checkout")
	}
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(src, api.OpenAPI) {
		t.Fatal("api/openapi.yaml differs from shared/spec/openapi.yaml: copy it over")
	}
}
