package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/wrennhq/wrenn"
)

// maxJSONBody bounds every JSON request body.
const maxJSONBody = 1 << 20

// decodeJSON reads r's body, which must be one JSON object, into v.
// Unknown fields are ignored; a field given as null is refused, since no
// request field of the contract is nullable.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return wrenn.Errorf(wrenn.EUnsupportedMedia, "request body must be application/json")
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxJSONBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return jsonError(err)
		}
		return wrenn.Errorf(wrenn.EInvalid, "read request body: %v", err)
	}
	var fields map[string]json.RawMessage
	switch err := json.Unmarshal(body, &fields); {
	case len(bytes.TrimSpace(body)) == 0:
		return wrenn.Errorf(wrenn.EInvalid, "request body must be a JSON object")
	case err != nil:
		return jsonError(err)
	case fields == nil:
		return wrenn.Errorf(wrenn.EInvalid, "request body must be a JSON object, not null")
	}
	for name, raw := range fields {
		if string(raw) == "null" {
			return wrenn.Errorf(wrenn.EInvalid, "%s must not be null", name)
		}
	}
	if err := json.Unmarshal(body, v); err != nil {
		return jsonError(err)
	}
	return nil
}

func jsonError(err error) error {
	var (
		mbe *http.MaxBytesError
		se  *json.SyntaxError
		ute *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &mbe):
		return wrenn.Errorf(wrenn.ETooLarge, "request body must be at most %d bytes", mbe.Limit)
	case errors.As(err, &se):
		return wrenn.Errorf(wrenn.EInvalid, "malformed JSON at byte %d", se.Offset)
	case errors.As(err, &ute):
		if ute.Field == "" {
			return wrenn.Errorf(wrenn.EInvalid, "request body must be a JSON object")
		}
		return wrenn.Errorf(wrenn.EInvalid, "%s must be %s", ute.Field, jsonKind(ute.Type.Kind().String()))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return wrenn.Errorf(wrenn.EInvalid, "malformed JSON: unexpected end of body")
	default:
		return wrenn.Errorf(wrenn.EInvalid, "malformed JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
}

func jsonKind(goKind string) string {
	switch goKind {
	case "int", "int64", "int32":
		return "an integer"
	case "string":
		return "a string"
	case "slice":
		return "an array"
	case "map", "struct", "ptr":
		return "an object"
	case "bool":
		return "a boolean"
	}
	return fmt.Sprintf("of type %s", goKind)
}
