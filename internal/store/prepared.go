package store

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// Prepared statements for the hot reads (issue 14): a query run through
// queryRowPrepared is prepared once per pool and then once per connection
// as database/sql first uses it there, instead of being parsed again on
// every call. On SQLite parsing was a quarter of an authenticated
// request's CPU; pgx caches statements on PostgreSQL by itself, so there
// it saves only the rebind.

// stmtCache holds a pool's prepared statements by query text.
type stmtCache struct {
	pool *sql.DB
	mu   sync.RWMutex
	m    map[string]*sql.Stmt
}

func newStmtCache(pool *sql.DB) *stmtCache {
	return &stmtCache{pool: pool, m: make(map[string]*sql.Stmt)}
}

// get returns q prepared, rebound for d. q must be a constant of the
// code, never built from values: the cache keeps every text it is given.
func (c *stmtCache) get(ctx context.Context, d dialect, q string) (*sql.Stmt, error) {
	c.mu.RLock()
	st, ok := c.m[q]
	c.mu.RUnlock()
	if ok {
		return st, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[q]; ok {
		return st, nil
	}
	st, err := c.pool.PrepareContext(ctx, d.rebind(q))
	if err != nil {
		return nil, err
	}
	c.m[q] = st
	return st, nil
}

// close closes every statement.
func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for q, st := range c.m {
		errs = append(errs, st.Close())
		delete(c.m, q)
	}
	return errors.Join(errs...)
}

// queryRowPrepared is queryRow through a prepared statement, for a
// constant query text on a hot path. On a transaction, or if preparing fails, it
// runs the query as queryRow does (which then reports the failure).
func (c conn) queryRowPrepared(ctx context.Context, q string, args ...any) *sql.Row {
	if c.stmts == nil {
		return c.queryRow(ctx, q, args...)
	}
	st, err := c.stmts.get(ctx, c.d, q)
	if err != nil {
		return c.queryRow(ctx, q, args...)
	}
	return st.QueryRowContext(ctx, args...)
}
