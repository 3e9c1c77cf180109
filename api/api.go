// Package api embeds Wrenn's API contract, openapi.yaml: the customer's
// contract shared/spec/openapi.yaml, unchanged, plus the operations and
// schemas Wrenn added since (issue 11's file system operations). The
// server serves it and tests validate every exchange against it; a test
// keeps it a superset of its source.
package api

import _ "embed"

// OpenAPI is the contract in YAML.
//
//go:embed openapi.yaml
var OpenAPI []byte
