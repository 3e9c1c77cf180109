package main

import (
	"testing"
	"time"
)

func TestHealthFromEnv(t *testing.T) {
	for _, c := range []struct {
		env     string
		want    time.Duration
		wantErr bool
	}{
		{"", 0, false}, // the agent's default
		{"30s", 30 * time.Second, false},
		{"1h", time.Hour, false},
		{"500ms", 0, true},
		{"25h", 0, true},
		{"often", 0, true},
		{"-10s", 0, true},
	} {
		t.Run(c.env, func(t *testing.T) {
			t.Setenv(envHealthInterval, c.env)
			got, err := healthFromEnv()
			if (err != nil) != c.wantErr {
				t.Fatalf("err = %v, want error %v", err, c.wantErr)
			}
			if err == nil && got.Interval != c.want {
				t.Errorf("interval = %v, want %v", got.Interval, c.want)
			}
		})
	}
}
