package agentrpc

// The generators are built from pinned versions, outside this module, so
// they never become its dependencies. protoc comes from Debian's
// protobuf-compiler package.
//go:generate sh gen.sh
