-- A team's own quota, set by the operator (`wrenn admin quota set`). A NULL
-- limit takes the operator's default; a row exists only while a team has
-- some limit of its own.

-- +goose Up
CREATE TABLE team_quotas (
    team_id         TEXT PRIMARY KEY REFERENCES teams (id) ON DELETE CASCADE,
    max_sandboxes   INTEGER,
    max_vcpus       INTEGER,
    max_memory_mb   INTEGER,
    max_snapshot_mb BIGINT,
    updated_at      TIMESTAMPTZ NOT NULL
);

CREATE INDEX sandboxes_team_status ON sandboxes (team_id, status);

-- +goose Down
DROP INDEX sandboxes_team_status;
DROP TABLE team_quotas;
