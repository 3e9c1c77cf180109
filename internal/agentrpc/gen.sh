#!/bin/sh
# Regenerates agentv1/ from agent.proto. Run through `go generate`.
set -eu
GOBIN=$(mktemp -d)
export GOBIN
trap 'rm -rf "$GOBIN"' EXIT
go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
go install connectrpc.com/connect/cmd/protoc-gen-connect-go@v1.19.1
PATH="$GOBIN:$PATH" protoc \
  --go_out=. --go_opt=module=github.com/wrennhq/wrenn/internal/agentrpc \
  --connect-go_out=. --connect-go_opt=module=github.com/wrennhq/wrenn/internal/agentrpc \
  agent.proto
