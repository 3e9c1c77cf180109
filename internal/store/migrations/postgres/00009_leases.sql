-- +goose Up
-- Leases (issue 13, control planes that can fail): each background job
-- of the control plane (a host's reconciler, the heartbeat check, the
-- stats recorder) runs on the one replica holding its lease, which renews
-- it before expires_ms; a replica that dies stops renewing and another
-- takes the lease once it has expired. expires_ms is in milliseconds
-- since the Unix epoch, by the database's clock, so that replicas' clocks
-- need not agree (internal/lease).
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
);

-- +goose Down
DROP TABLE leases;
