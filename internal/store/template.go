package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/wrennhq/wrenn"
)

// A template row with an empty team_id is a base template, visible to every
// team.
const (
	baseTeam        = ""
	templateColumns = `team_id, name, type, vcpus, memory_mb, size_bytes, created_at`
	// isBase is 1 for a base template and 0 for a team's own, for sorting.
	isBase = `CASE WHEN team_id = '' THEN 1 ELSE 0 END`
)

func scanTemplate(row interface{ Scan(...any) error }) (*wrenn.Template, error) {
	var (
		t               wrenn.Template
		vcpus, memoryMB sql.NullInt64
	)
	if err := row.Scan(&t.TeamID, &t.Name, &t.Type, &vcpus, &memoryMB, &t.SizeBytes, timeCol{&t.CreatedAt}); err != nil {
		return nil, err
	}
	t.VCPUs = intPtr(vcpus)
	t.MemoryMB = intPtr(memoryMB)
	return &t, nil
}

// templateArgs returns t's values in templateColumns order.
func (db *DB) templateArgs(t *wrenn.Template) []any {
	return []any{t.TeamID, t.Name, string(t.Type), nullInt(t.VCPUs), nullInt(t.MemoryMB), t.SizeBytes, db.d.time(t.CreatedAt)}
}

// CreateTemplate records t. It is EConflict if the team already has a
// template of that name or, for a team template, a base template has it.
// t.CreatedAt is normalised to UTC microseconds, as stored.
func (db *DB) CreateTemplate(ctx context.Context, t *wrenn.Template) error {
	t.CreatedAt = normTime(t.CreatedAt)
	errExists := conflict("template name already exists")
	err := db.tx(ctx, func(c conn) error {
		if t.TeamID != baseTeam {
			var one int
			err := c.queryRow(ctx, `SELECT 1 FROM templates WHERE team_id = '' AND name = ?`, t.Name).Scan(&one)
			if err == nil {
				return errExists
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("find base template: %w", err)
			}
		}
		_, err := c.exec(ctx, `INSERT INTO templates (`+templateColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`, db.templateArgs(t)...)
		if db.d.isUniqueViolation(err) {
			return errExists
		}
		return err
	})
	return wrapUnlessDomain("create template", err)
}

// PutTemplate records t, replacing any template with its team and name.
// It is how base templates (TeamID "") are registered. t.CreatedAt is
// normalised to UTC microseconds, as stored.
func (db *DB) PutTemplate(ctx context.Context, t *wrenn.Template) error {
	t.CreatedAt = normTime(t.CreatedAt)
	_, err := db.w.exec(ctx, `INSERT INTO templates (`+templateColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (team_id, name) DO UPDATE SET
			type = excluded.type, vcpus = excluded.vcpus, memory_mb = excluded.memory_mb,
			size_bytes = excluded.size_bytes, created_at = excluded.created_at`, db.templateArgs(t)...)
	if err != nil {
		return fmt.Errorf("put template: %w", err)
	}
	return nil
}

// GetTemplate returns the team's own template called name or, failing
// that, the base template of that name.
func (db *DB) GetTemplate(ctx context.Context, teamID, name string) (*wrenn.Template, error) {
	t, err := scanTemplate(db.r.queryRow(ctx, `SELECT `+templateColumns+` FROM templates
		WHERE name = ? AND (team_id = ? OR team_id = '')
		ORDER BY `+isBase+` LIMIT 1`, name, teamID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("template")
	}
	if err != nil {
		return nil, fmt.Errorf("get template: %w", err)
	}
	return t, nil
}

// ListTemplates returns the base templates and the team's own, of type typ
// or of any type if typ is "": base ones first, each group by name.
func (db *DB) ListTemplates(ctx context.Context, teamID string, typ wrenn.TemplateType) ([]*wrenn.Template, error) {
	q := `SELECT ` + templateColumns + ` FROM templates WHERE (team_id = '' OR team_id = ?)`
	args := []any{teamID}
	if typ != "" {
		q += ` AND type = ?`
		args = append(args, string(typ))
	}
	q += ` ORDER BY ` + isBase + ` DESC, name, team_id`
	rows, err := db.r.query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list templates: %w", err)
	}
	defer rows.Close()
	ts := []*wrenn.Template{}
	for rows.Next() {
		t, err := scanTemplate(rows)
		if err != nil {
			return nil, fmt.Errorf("list templates: %w", err)
		}
		ts = append(ts, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list templates: %w", err)
	}
	return ts, nil
}

// DeleteTemplate deletes the team's own template called name. Base
// templates cannot be deleted this way: they are not found.
func (db *DB) DeleteTemplate(ctx context.Context, teamID, name string) error {
	if teamID == baseTeam {
		return notFound("template")
	}
	err := db.w.execOne(ctx, "template", `DELETE FROM templates WHERE team_id = ? AND name = ?`, teamID, name)
	return wrapUnlessDomain("delete template", err)
}

func nullInt(p *int) any {
	if p == nil {
		return nil
	}
	return int64(*p)
}

func intPtr(n sql.NullInt64) *int {
	if !n.Valid {
		return nil
	}
	v := int(n.Int64)
	return &v
}
