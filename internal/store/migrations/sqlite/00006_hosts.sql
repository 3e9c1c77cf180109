-- +goose Up
-- Platform admins (issue 13): they manage the fleet's hosts. The first
-- account made on a server is one, so on a server that already has
-- accounts its earliest user becomes one.
ALTER TABLE users ADD COLUMN is_admin INTEGER NOT NULL DEFAULT 0;
UPDATE users SET is_admin = 1 WHERE id = (SELECT id FROM users ORDER BY created_at, id LIMIT 1);

-- The registry of hosts. A host is created 'pending' with a one-time
-- registration token, of which only the SHA-256 is kept (token_hash,
-- unique, NULL once used) until token_expires_at; its agent's machine
-- specs and address stay NULL until it registers. status is 'pending',
-- 'online', 'offline' or 'unreachable'; draining (no new sandboxes) is a
-- flag beside it, so heartbeats never undo a drain. team_id is the owner
-- of a BYOC host, NULL for a regular (shared) one.
CREATE TABLE hosts (
    id                TEXT PRIMARY KEY,
    type              TEXT NOT NULL,
    team_id           TEXT REFERENCES teams (id) ON DELETE CASCADE,
    provider          TEXT,
    availability_zone TEXT,
    arch              TEXT,
    cpu_cores         INTEGER,
    memory_mb         INTEGER,
    disk_gb           INTEGER,
    address           TEXT,
    status            TEXT NOT NULL,
    draining          INTEGER NOT NULL DEFAULT 0,
    last_heartbeat_at TEXT,
    token_hash        BLOB UNIQUE,
    token_expires_at  TEXT,
    created_by        TEXT NOT NULL REFERENCES users (id),
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
) STRICT;

CREATE INDEX hosts_team_id ON hosts (team_id, created_at);

-- A host's tags: labels that sandbox creates may ask for.
CREATE TABLE host_tags (
    host_id TEXT NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    tag     TEXT NOT NULL,
    PRIMARY KEY (host_id, tag)
) STRICT;

CREATE INDEX host_tags_tag ON host_tags (tag);

-- What lives on a host: its delete-preview, and a forced delete.
CREATE INDEX sandboxes_host_id ON sandboxes (host_id, status);

-- +goose Down
DROP INDEX sandboxes_host_id;
DROP TABLE host_tags;
DROP TABLE hosts;
ALTER TABLE users DROP COLUMN is_admin;
