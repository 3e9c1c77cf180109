-- +goose Up
-- The fleet's certificate authority (issue 13, the agent link): one row,
-- made by the first control plane that starts and shared by every other
-- one on the same database. key_pem is the CA's private key, unencrypted
-- (docs/SECURITY.md: whoever reads this table can mint certificates).
CREATE TABLE fleet_ca (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    cert_pem   TEXT NOT NULL,
    key_pem    TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

-- Every certificate the CA gave a host's agent, by serial (hex). An agent
-- connects only with a certificate recorded here, of a host that still
-- exists, and not revoked. host_id has no foreign key: a deleted host's
-- certificates stay, revoked, as the record of what was given out.
CREATE TABLE host_certificates (
    serial     TEXT PRIMARY KEY,
    host_id    TEXT NOT NULL,
    not_after  TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE INDEX host_certificates_host_id ON host_certificates (host_id);

-- +goose Down
DROP INDEX host_certificates_host_id;
DROP TABLE host_certificates;
DROP TABLE fleet_ca;
