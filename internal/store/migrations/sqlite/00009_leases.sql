-- +goose Up
-- Leases (issue 13, control planes that can fail): see the PostgreSQL
-- migration. On SQLite one process uses the database, so a lease is
-- always taken (internal/store/lease.go); the table records who holds
-- each.
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_ms INTEGER NOT NULL
) STRICT;

-- +goose Down
DROP TABLE leases;
