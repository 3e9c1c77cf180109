package store_test

import (
	"reflect"
	"testing"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/store"
)

// TestSandboxNetworkReadBack: every egress policy reads back as written,
// the two rule-less ones (read without the JSON decoder) among them.
func TestSandboxNetworkReadBack(t *testing.T) {
	forEachEngine(t, func(t *testing.T, db *store.DB) {
		_, team := mustAccount(t, db, "net@example.com", base)
		for _, n := range []wrenn.Network{
			{Internet: true},
			{},
			{Internet: true, DenyOut: []string{"*.example.com"}},
			{AllowOut: []string{"198.51.100.0/24", "pypi.org"}},
		} {
			sb := &wrenn.Sandbox{ID: wrenn.NewID(wrenn.PrefixSandbox), TeamID: team.ID, Template: "minimal",
				Status: wrenn.StatusRunning, VCPUs: 1, MemoryMB: 512, CreatedAt: at(0), LastUpdated: at(0), Network: n}
			mustNoError(t, "create sandbox", db.CreateSandbox(t.Context(), sb))
			got, err := db.GetSandbox(t.Context(), team.ID, sb.ID)
			mustNoError(t, "get sandbox", err)
			if !reflect.DeepEqual(got.Network, n) {
				t.Errorf("network %+v reads back as %+v", n, got.Network)
			}
		}
	})
}
