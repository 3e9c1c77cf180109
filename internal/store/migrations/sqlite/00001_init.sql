-- Wrenn's schema on SQLite. Tables are STRICT so a value of the wrong type
-- is an error, not a silent conversion. Timestamps are TEXT in the fixed-width
-- UTC form 2006-01-02T15:04:05.000000Z, which sorts in time order.

-- +goose Up
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL,
    email_lower   TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL
) STRICT;

CREATE TABLE teams (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;

CREATE TABLE memberships (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    team_id    TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    role       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (user_id, team_id)
) STRICT;

CREATE INDEX memberships_team_id ON memberships (team_id);

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    team_id    TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    key_prefix TEXT NOT NULL,
    key_hash   BLOB NOT NULL,
    created_by TEXT NOT NULL REFERENCES users (id),
    created_at TEXT NOT NULL,
    last_used  TEXT
) STRICT;

CREATE UNIQUE INDEX api_keys_key_hash ON api_keys (key_hash);
CREATE INDEX api_keys_team_id ON api_keys (team_id, created_at);

CREATE TABLE sandboxes (
    id             TEXT PRIMARY KEY,
    team_id        TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    template       TEXT NOT NULL,
    status         TEXT NOT NULL,
    vcpus          INTEGER NOT NULL,
    memory_mb      INTEGER NOT NULL,
    timeout_sec    INTEGER NOT NULL,
    guest_ip       TEXT NOT NULL DEFAULT '',
    host_ip        TEXT NOT NULL DEFAULT '',
    host_id        TEXT NOT NULL DEFAULT '',
    created_at     TEXT NOT NULL,
    started_at     TEXT,
    last_active_at TEXT,
    last_updated   TEXT NOT NULL
) STRICT;

CREATE INDEX sandboxes_team_id ON sandboxes (team_id, created_at);
CREATE INDEX sandboxes_status ON sandboxes (status);

-- team_id '' marks a base template, visible to every team; so no foreign key.
CREATE TABLE templates (
    team_id    TEXT NOT NULL DEFAULT '',
    name       TEXT NOT NULL,
    type       TEXT NOT NULL,
    vcpus      INTEGER,
    memory_mb  INTEGER,
    size_bytes INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    PRIMARY KEY (team_id, name)
) STRICT;

CREATE INDEX templates_name ON templates (name);

-- +goose Down
DROP TABLE templates;
DROP TABLE sandboxes;
DROP TABLE api_keys;
DROP TABLE memberships;
DROP TABLE teams;
DROP TABLE users;
