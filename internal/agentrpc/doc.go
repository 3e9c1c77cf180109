// Package agentrpc carries the host agent's RPC contract (agent.proto,
// Connect over HTTP/2) between the control plane and the agent: Server
// exposes a Host over it, Client implements wrenn.Agent and
// wrenn.Snapshotter with it. Protobuf types stay inside this package;
// both sides see only wrenn's domain types. Callers authenticate with a
// shared bearer token.
package agentrpc
