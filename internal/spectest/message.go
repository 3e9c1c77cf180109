package spectest

import (
	"context"
	"encoding/json"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/wrennhq/wrenn/api"
)

var (
	docOnce sync.Once
	doc     *openapi3.T
	docErr  error
)

// CheckMessage reports to tb a WebSocket message, raw JSON, that breaks
// the contract's schema named schema (a components/schemas entry, such as
// PtyServerMessage): the contract describes messages as schemas, since
// OpenAPI has no words for what flows over a WebSocket.
func CheckMessage(tb testing.TB, schema string, raw []byte) {
	tb.Helper()
	docOnce.Do(func() {
		doc, docErr = openapi3.NewLoader().LoadFromData(api.OpenAPI)
		if docErr == nil {
			docErr = doc.Validate(context.Background())
		}
	})
	if docErr != nil {
		tb.Fatalf("load openapi.yaml: %v", docErr)
	}
	ref, ok := doc.Components.Schemas[schema]
	if !ok || ref.Value == nil {
		tb.Fatalf("the contract has no schema %s", schema)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		tb.Errorf("spec violation: %s message is not JSON: %v: %.300s", schema, err, raw)
		return
	}
	if err := ref.Value.VisitJSON(v); err != nil {
		tb.Errorf("spec violation: %s message breaks the contract: %v\nmessage: %.300s", schema, err, raw)
	}
}
