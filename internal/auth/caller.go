package auth

import "context"

// Caller is who a request acts as, once authenticated.
type Caller struct {
	UserID   string // set for JWT callers; for API keys, the key's creator
	TeamID   string
	APIKeyID string // set for API-key callers
}

type callerKey struct{}

// WithCaller returns ctx carrying c.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller in ctx and whether there is one.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}
