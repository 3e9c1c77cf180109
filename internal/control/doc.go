// Package control holds the control plane's sandbox and template use cases:
// validate, record state, and hand the work to a host agent through
// wrenn.Agent. It never touches a VM and never speaks a transport;
// internal/httpapi calls it, and the host agent (in process or over RPC)
// implements wrenn.Agent.
package control
