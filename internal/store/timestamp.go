package store

import (
	"fmt"
	"time"
)

// sqliteTimeLayout is how SQLite columns hold timestamps: UTC, fixed width,
// microseconds, so that text order is time order.
const sqliteTimeLayout = "2006-01-02T15:04:05.000000Z"

// normTime returns t in UTC truncated to microseconds: what both engines
// store, so a time reads back equal to what was written.
func normTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// normTimePtr is normTime for an optional time.
func normTimePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	n := normTime(*t)
	return &n
}

// parseTime turns a stored value back into a UTC time: a time.Time from
// PostgreSQL, text in sqliteTimeLayout from SQLite.
func parseTime(src any) (time.Time, error) {
	switch v := src.(type) {
	case time.Time:
		return normTime(v), nil
	case string:
		t, err := time.Parse(sqliteTimeLayout, v)
		if err != nil {
			return time.Time{}, fmt.Errorf("parse timestamp: %w", err)
		}
		return t, nil
	case []byte:
		return parseTime(string(v))
	default:
		return time.Time{}, fmt.Errorf("parse timestamp: unexpected %T", src)
	}
}

// timeCol scans a NOT NULL timestamp column into *t.
type timeCol struct{ t *time.Time }

func (c timeCol) Scan(src any) error {
	t, err := parseTime(src)
	if err != nil {
		return err
	}
	*c.t = t
	return nil
}

// nullTimeCol scans a nullable timestamp column into *t; NULL gives nil.
type nullTimeCol struct{ t **time.Time }

func (c nullTimeCol) Scan(src any) error {
	if src == nil {
		*c.t = nil
		return nil
	}
	t, err := parseTime(src)
	if err != nil {
		return err
	}
	*c.t = &t
	return nil
}
