// Package spectest checks HTTP exchanges against the customer's contract,
// api/openapi.yaml. Tests wrap their client's transport with Transport so
// that every response they see — and every request the server accepts —
// is validated; a server that drifts from the spec fails its tests.
package spectest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/wrennhq/wrenn/api"
)

var (
	loadOnce sync.Once
	router   routers.Router
	loadErr  error
)

// Router returns a router over the contract, loaded once per test binary.
func Router(tb testing.TB) routers.Router {
	tb.Helper()
	loadOnce.Do(func() {
		loader := openapi3.NewLoader()
		var doc *openapi3.T
		doc, loadErr = loader.LoadFromData(api.OpenAPI)
		if loadErr != nil {
			return
		}
		if loadErr = doc.Validate(context.Background()); loadErr != nil {
			return
		}
		for _, ref := range doc.Components.Schemas {
			nullableToType(ref, map[*openapi3.Schema]bool{})
		}
		doc.Servers = nil // match whatever host the test server has
		// /v1/capsules serves the sandbox operations under the later
		// product's name (see the spec's description): the same
		// operations, validated the same way.
		for path, item := range doc.Paths.Map() {
			if rest, ok := strings.CutPrefix(path, "/v1/sandboxes"); ok {
				doc.Paths.Set("/v1/capsules"+rest, item)
			}
		}
		router, loadErr = gorillamux.NewRouter(doc)
	})
	if loadErr != nil {
		tb.Fatalf("load openapi.yaml: %v", loadErr)
	}
	return router
}

// nullableToType rewrites the 3.0 keyword "nullable: true", which the
// 3.1 document uses, as its 3.1 spelling (a "null" type), so validation
// follows what the contract means rather than ignoring the keyword.
func nullableToType(ref *openapi3.SchemaRef, seen map[*openapi3.Schema]bool) {
	if ref == nil || ref.Value == nil || seen[ref.Value] {
		return
	}
	s := ref.Value
	seen[s] = true
	if s.Nullable && s.Type != nil && !s.Type.IncludesNull() {
		t := append(s.Type.Slice(), openapi3.TypeNull)
		s.Type = (*openapi3.Types)(&t)
	}
	for _, p := range s.Properties {
		nullableToType(p, seen)
	}
	nullableToType(s.Items, seen)
}

// Transport returns a RoundTripper that sends through base (nil means
// http.DefaultTransport) and reports to tb every exchange that breaks the
// contract:
//   - a response whose status the operation declares must match its schema;
//   - every 4xx/5xx response must be the error envelope with a code and a message;
//   - a request the server accepted (2xx) must itself be valid;
//   - a request to a path/method the contract lacks must have been refused.
func Transport(tb testing.TB, base http.RoundTripper) http.RoundTripper {
	tb.Helper()
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{tb: tb, base: base, router: Router(tb)}
}

type transport struct {
	tb     testing.TB
	base   http.RoundTripper
	router routers.Router
}

// maxValidatedBody bounds the bodies copied for validation; larger ones
// (file transfers) are passed through unchecked.
const maxValidatedBody = 4 << 20

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	reqBody, req, err := snapshotBody(req)
	if err != nil {
		return nil, err
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return resp, nil
	}
	if resp.ContentLength > maxValidatedBody || resp.Header.Get("Content-Type") == "application/octet-stream" {
		return resp, nil // file contents: the status and headers are all there is to check
	}
	respBody, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(respBody))
	if problem := t.check(req, reqBody, resp, respBody); problem != "" {
		t.tb.Errorf("spec violation: %s %s → %d: %s\nresponse body: %.500s", req.Method, req.URL.Path, resp.StatusCode, problem, respBody)
	}
	return resp, nil
}

func (t *transport) check(req *http.Request, reqBody []byte, resp *http.Response, respBody []byte) string {
	if resp.StatusCode >= 400 {
		if p := checkEnvelope(resp, respBody); p != "" {
			return p
		}
	}
	route, params, err := t.router.FindRoute(req)
	if err != nil {
		if resp.StatusCode < 400 {
			return fmt.Sprintf("the contract has no such operation (%v), yet the server accepted it", err)
		}
		return ""
	}
	ctx := context.Background()
	in := &openapi3filter.RequestValidationInput{
		Request: cloneWithBody(req, reqBody), PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
	}
	if resp.StatusCode < 300 && reqBody != nil {
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			return fmt.Sprintf("server accepted a request that breaks the contract: %v", err)
		}
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(respBody)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: false},
	}
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		return fmt.Sprintf("response breaks the contract: %v", err)
	}
	return ""
}

func checkEnvelope(resp *http.Response, body []byte) string {
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		return fmt.Sprintf("error response has Content-Type %q, want application/json", ct)
	}
	var env struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Error == nil || env.Error.Code == "" || env.Error.Message == "" {
		return "error response is not the {\"error\":{\"code\",\"message\"}} envelope"
	}
	return ""
}

// snapshotBody copies a small request body so it can be both sent and
// validated; large or unknown-length bodies are sent unvalidated.
func snapshotBody(req *http.Request) ([]byte, *http.Request, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, req, nil
	}
	// A client request's ContentLength of 0 with a body is also unknown
	// (a streamed upload from a pipe): reading it here would hold the
	// whole stream in memory before any of it is sent.
	if req.ContentLength <= 0 || req.ContentLength > maxValidatedBody {
		return nil, req, nil
	}
	b, err := io.ReadAll(req.Body)
	req.Body.Close()
	if err != nil {
		return nil, nil, err
	}
	return b, cloneWithBody(req, b), nil
}

func cloneWithBody(req *http.Request, body []byte) *http.Request {
	r := req.Clone(req.Context())
	if body != nil {
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
	}
	return r
}
