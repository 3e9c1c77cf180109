-- Wrenn's schema on PostgreSQL. Identifiers and names that queries sort by
-- use COLLATE "C" so that order is bytewise, as it is on SQLite, whatever the
-- database's default collation.

-- +goose Up
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL,
    email_lower   TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);

CREATE TABLE teams (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE memberships (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    team_id    TEXT COLLATE "C" NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    role       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, team_id)
);

CREATE INDEX memberships_team_id ON memberships (team_id);

CREATE TABLE api_keys (
    id         TEXT COLLATE "C" PRIMARY KEY,
    team_id    TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    key_prefix TEXT NOT NULL,
    key_hash   BYTEA NOT NULL,
    created_by TEXT NOT NULL REFERENCES users (id),
    created_at TIMESTAMPTZ NOT NULL,
    last_used  TIMESTAMPTZ
);

CREATE UNIQUE INDEX api_keys_key_hash ON api_keys (key_hash);
CREATE INDEX api_keys_team_id ON api_keys (team_id, created_at);

CREATE TABLE sandboxes (
    id             TEXT COLLATE "C" PRIMARY KEY,
    team_id        TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    template       TEXT NOT NULL,
    status         TEXT NOT NULL,
    vcpus          INTEGER NOT NULL,
    memory_mb      INTEGER NOT NULL,
    timeout_sec    INTEGER NOT NULL,
    guest_ip       TEXT NOT NULL DEFAULT '',
    host_ip        TEXT NOT NULL DEFAULT '',
    host_id        TEXT NOT NULL DEFAULT '',
    created_at     TIMESTAMPTZ NOT NULL,
    started_at     TIMESTAMPTZ,
    last_active_at TIMESTAMPTZ,
    last_updated   TIMESTAMPTZ NOT NULL
);

CREATE INDEX sandboxes_team_id ON sandboxes (team_id, created_at);
CREATE INDEX sandboxes_status ON sandboxes (status);

-- team_id '' marks a base template, visible to every team; so no foreign key.
CREATE TABLE templates (
    team_id    TEXT COLLATE "C" NOT NULL DEFAULT '',
    name       TEXT COLLATE "C" NOT NULL,
    type       TEXT NOT NULL,
    vcpus      INTEGER,
    memory_mb  INTEGER,
    size_bytes BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (team_id, name)
);

CREATE INDEX templates_name ON templates (name);

-- +goose Down
DROP TABLE templates;
DROP TABLE sandboxes;
DROP TABLE api_keys;
DROP TABLE memberships;
DROP TABLE teams;
DROP TABLE users;
