// Package api embeds the customer's contract, openapi.yaml, a copy of
// shared/spec/openapi.yaml. The server serves it and tests validate every
// exchange against it; a test keeps the copy identical to its source.
package api

import _ "embed"

// OpenAPI is the contract in YAML.
//
//go:embed openapi.yaml
var OpenAPI []byte
