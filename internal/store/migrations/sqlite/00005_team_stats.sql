-- +goose Up
-- What each team's running sandboxes reserved, recorded by the control
-- plane once a step (a minute) while the team has any (issue 11). The
-- key makes a step count once however many control planes record it.
CREATE TABLE team_samples (
    team_id    TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    sampled_at TEXT NOT NULL,
    running    INTEGER NOT NULL,
    vcpus      INTEGER NOT NULL,
    memory_mb  INTEGER NOT NULL,
    PRIMARY KEY (team_id, sampled_at)
) STRICT;

CREATE INDEX team_samples_sampled_at ON team_samples (sampled_at);

-- Each team's reservations per UTC day, added to with every sample
-- recorded; kept after the samples are pruned.
CREATE TABLE team_usage_daily (
    team_id        TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    day            TEXT NOT NULL, -- YYYY-MM-DD
    cpu_minutes    REAL NOT NULL,
    ram_mb_minutes REAL NOT NULL,
    PRIMARY KEY (team_id, day)
) STRICT;

-- +goose Down
DROP TABLE team_usage_daily;
DROP TABLE team_samples;
