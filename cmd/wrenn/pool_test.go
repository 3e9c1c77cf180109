package main

import (
	"testing"

	"github.com/wrennhq/wrenn/internal/agent"
)

func TestPoolFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    agent.PoolConfig
		wantErr bool
	}{
		{"defaults", nil, agent.PoolConfig{Max: agent.DefaultPoolMax}, false},
		{"set", map[string]string{envPoolMax: "40", envPoolMaxMemoryMB: "8192", envPoolRefills: "1"},
			agent.PoolConfig{Max: 40, MaxMemoryMB: 8192, Refills: 1}, false},
		{"not a number", map[string]string{envPoolMax: "many"}, agent.PoolConfig{}, true},
		{"negative", map[string]string{envPoolMaxMemoryMB: "-1"}, agent.PoolConfig{}, true},
		{"no members", map[string]string{envPoolMax: "0"}, agent.PoolConfig{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{envPoolMax, envPoolMaxMemoryMB, envPoolRefills} {
				t.Setenv(k, tt.env[k])
			}
			got, err := poolFromEnv()
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want an error: %v", err, tt.wantErr)
			}
			if !tt.wantErr && got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
