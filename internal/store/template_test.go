package store_test

import (
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/store"
)

func intp(n int) *int { return &n }

func TestTemplates(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *store.DB) {
		ctx := t.Context()
		_, teamA := mustAccount(t, db, "alice@example.com", base)
		_, teamB := mustAccount(t, db, "bob@example.com", base)

		ubuntu := &wrenn.Template{Name: "ubuntu", Type: wrenn.TemplateBase, VCPUs: intp(2), MemoryMB: intp(512), SizeBytes: 1 << 30, CreatedAt: at(0)}
		alpine := &wrenn.Template{Name: "alpine", Type: wrenn.TemplateBase, SizeBytes: 1 << 20, CreatedAt: at(time.Second)}
		mustNoError(t, "put ubuntu", db.PutTemplate(ctx, ubuntu))
		mustNoError(t, "put alpine", db.PutTemplate(ctx, alpine))
		snapA := &wrenn.Template{Name: "snap", TeamID: teamA.ID, Type: wrenn.TemplateSnapshot, VCPUs: intp(1), MemoryMB: intp(256), SizeBytes: 42, CreatedAt: at(time.Minute)}
		snapB := &wrenn.Template{Name: "snap", TeamID: teamB.ID, Type: wrenn.TemplateSnapshot, SizeBytes: 43, CreatedAt: at(time.Minute)}
		devA := &wrenn.Template{Name: "dev", TeamID: teamA.ID, Type: wrenn.TemplateSnapshot, SizeBytes: 44, CreatedAt: at(2 * time.Minute)}

		t.Run("create", func(t *testing.T) {
			tests := []struct {
				name     string
				tmpl     *wrenn.Template
				wantCode string
			}{
				{"team template", snapA, ""},
				{"same name, other team", snapB, ""},
				{"second team template", devA, ""},
				{"same name, same team", &wrenn.Template{Name: "snap", TeamID: teamA.ID, Type: wrenn.TemplateSnapshot, CreatedAt: base}, wrenn.EConflict},
				{"team template named like a base one", &wrenn.Template{Name: "ubuntu", TeamID: teamA.ID, Type: wrenn.TemplateSnapshot, CreatedAt: base}, wrenn.EConflict},
				{"base template that exists", &wrenn.Template{Name: "alpine", Type: wrenn.TemplateBase, CreatedAt: base}, wrenn.EConflict},
			}
			for _, tc := range tests {
				err := db.CreateTemplate(ctx, tc.tmpl)
				if tc.wantCode == "" {
					mustNoError(t, tc.name, err)
					continue
				}
				wantError(t, err, tc.wantCode, "template name already exists")
			}
			// The failed creates changed nothing.
			got, err := db.GetTemplate(ctx, teamA.ID, "ubuntu")
			mustNoError(t, "get ubuntu", err)
			mustEqual(t, "ubuntu", got, ubuntu)
			got, err = db.GetTemplate(ctx, teamA.ID, "snap")
			mustNoError(t, "get snap", err)
			mustEqual(t, "snap", got, snapA)
		})

		t.Run("put overwrites", func(t *testing.T) {
			snapA.SizeBytes, snapA.VCPUs, snapA.MemoryMB, snapA.CreatedAt = 4242, nil, intp(1024), at(time.Hour)
			mustNoError(t, "put snap", db.PutTemplate(ctx, snapA))
			got, err := db.GetTemplate(ctx, teamA.ID, "snap")
			mustNoError(t, "get snap", err)
			mustEqual(t, "overwritten snap", got, snapA)
		})

		// Team A shadows base "alpine" with its own; team B still sees the base one.
		alpineA := &wrenn.Template{Name: "alpine", TeamID: teamA.ID, Type: wrenn.TemplateSnapshot, SizeBytes: 7, CreatedAt: at(3 * time.Minute)}
		mustNoError(t, "put team alpine", db.PutTemplate(ctx, alpineA))

		t.Run("get", func(t *testing.T) {
			tests := []struct {
				name, team, tmpl string
				want             *wrenn.Template // nil: not found
			}{
				{"base, from a team", teamA.ID, "ubuntu", ubuntu},
				{"base, with no team", "", "ubuntu", ubuntu},
				{"own", teamA.ID, "snap", snapA},
				{"own, same name as another team's", teamB.ID, "snap", snapB},
				{"own shadows base", teamA.ID, "alpine", alpineA},
				{"base not shadowed for others", teamB.ID, "alpine", alpine},
				{"another team's", teamB.ID, "dev", nil},
				{"team template, with no team", "", "snap", nil},
				{"unknown", teamA.ID, "none", nil},
			}
			for _, tc := range tests {
				got, err := db.GetTemplate(ctx, tc.team, tc.tmpl)
				if tc.want == nil {
					wantError(t, err, wrenn.ENotFound, "template not found")
					continue
				}
				mustNoError(t, tc.name, err)
				mustEqual(t, tc.name, got, tc.want)
			}
		})

		t.Run("list", func(t *testing.T) {
			tests := []struct {
				name string
				team string
				typ  wrenn.TemplateType
				want []*wrenn.Template
			}{
				{"all of team A", teamA.ID, "", []*wrenn.Template{alpine, ubuntu, alpineA, devA, snapA}},
				{"team A's snapshots", teamA.ID, wrenn.TemplateSnapshot, []*wrenn.Template{alpineA, devA, snapA}},
				{"base only", teamA.ID, wrenn.TemplateBase, []*wrenn.Template{alpine, ubuntu}},
				{"all of team B", teamB.ID, "", []*wrenn.Template{alpine, ubuntu, snapB}},
				{"unknown team", "team-none", "", []*wrenn.Template{alpine, ubuntu}},
				{"unknown team's snapshots", "team-none", wrenn.TemplateSnapshot, []*wrenn.Template{}},
			}
			for _, tc := range tests {
				got, err := db.ListTemplates(ctx, tc.team, tc.typ)
				mustNoError(t, tc.name, err)
				if got == nil {
					t.Fatalf("%s: ListTemplates returned nil, want an empty slice", tc.name)
				}
				mustEqual(t, tc.name, got, tc.want)
			}
		})

		t.Run("delete", func(t *testing.T) {
			tests := []struct {
				name, team, tmpl string
				wantCode         string
			}{
				{"base, from a team", teamA.ID, "ubuntu", wrenn.ENotFound},
				{"base, with no team", "", "ubuntu", wrenn.ENotFound},
				{"another team's", teamB.ID, "dev", wrenn.ENotFound},
				{"own", teamA.ID, "snap", ""},
				{"own again", teamA.ID, "snap", wrenn.ENotFound},
				{"own shadowing base", teamA.ID, "alpine", ""},
			}
			for _, tc := range tests {
				err := db.DeleteTemplate(ctx, tc.team, tc.tmpl)
				if tc.wantCode == "" {
					mustNoError(t, tc.name, err)
					continue
				}
				wantError(t, err, tc.wantCode, "template not found")
			}
			got, err := db.ListTemplates(ctx, teamA.ID, "")
			mustNoError(t, "list", err)
			mustEqual(t, "team A's templates after delete", got, []*wrenn.Template{alpine, ubuntu, devA})
			got, err = db.ListTemplates(ctx, teamB.ID, "")
			mustNoError(t, "list", err)
			mustEqual(t, "team B's templates after delete", got, []*wrenn.Template{alpine, ubuntu, snapB})
		})
	})
}
