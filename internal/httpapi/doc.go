// Package httpapi serves Wrenn's public REST and WebSocket API as
// api/openapi.yaml describes it. Handlers decode and validate the transport,
// call the auth and control use cases, and encode their answers; error codes
// become HTTP statuses in exactly one place, statusOf.
package httpapi
