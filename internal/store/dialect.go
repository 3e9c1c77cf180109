package store

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// pgUniqueViolation is PostgreSQL's SQLSTATE for unique_violation.
const pgUniqueViolation = "23505"

// dialect holds what differs between the engines. Queries are written once,
// in SQLite's spelling with ? placeholders, and passed through it.
type dialect struct {
	engine string // EngineSQLite or EnginePostgres
}

// rebind rewrites ? placeholders as $1, $2, … for PostgreSQL. Queries must
// not contain a literal ? anywhere else.
func (d dialect) rebind(q string) string {
	if d.engine != EnginePostgres || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 8)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] != '?' {
			b.WriteByte(q[i])
			continue
		}
		n++
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(n))
	}
	return b.String()
}

// isUniqueViolation reports whether err is a unique or primary-key
// constraint violation, judged by the engine's error code.
func (d dialect) isUniqueViolation(err error) bool {
	if err == nil {
		return false
	}
	if e, ok := errors.AsType[*sqlite.Error](err); ok {
		c := e.Code()
		return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	if e, ok := errors.AsType[*pgconn.PgError](err); ok {
		return e.Code == pgUniqueViolation
	}
	return false
}

// time returns t as the engine stores it: UTC at microsecond precision, as
// fixed-width text on SQLite and as a time.Time for PostgreSQL.
func (d dialect) time(t time.Time) any {
	t = normTime(t)
	if d.engine == EngineSQLite {
		return t.Format(sqliteTimeLayout)
	}
	return t
}

// nullTime is time for a nullable column; nil stores NULL.
func (d dialect) nullTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return d.time(*t)
}

// placeholders returns n comma-separated ? placeholders.
func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?, ", n-1) + "?"
}

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// conn runs ?-placeholder queries on a pool or a transaction, rebinding
// them for the engine. pool is set only for pools, so Close can reach it,
// and so are the pool's prepared statements (prepared.go).
type conn struct {
	q     querier
	d     dialect
	pool  *sql.DB
	stmts *stmtCache
}

func newConn(pool *sql.DB, d dialect) conn {
	return conn{q: pool, d: d, pool: pool, stmts: newStmtCache(pool)}
}

func (c conn) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return c.q.ExecContext(ctx, c.d.rebind(q), args...)
}

func (c conn) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return c.q.QueryContext(ctx, c.d.rebind(q), args...)
}

func (c conn) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return c.q.QueryRowContext(ctx, c.d.rebind(q), args...)
}

// queryStrings runs a query of one text column and returns its values,
// empty (not nil) when there are none.
func (c conn) queryStrings(ctx context.Context, q string, args ...any) ([]string, error) {
	rows, err := c.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// execOne runs a statement that must touch exactly one row. It returns
// notFound(thing) when it touches none.
func (c conn) execOne(ctx context.Context, thing, q string, args ...any) error {
	res, err := c.exec(ctx, q, args...)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return notFound(thing)
	}
	return nil
}
