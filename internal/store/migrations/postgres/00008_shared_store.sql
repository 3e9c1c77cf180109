-- +goose Up
-- Shared stores (issue 13): the store directory (WRENN_SHARED_DIR) a host's
-- agent keeps paused sandboxes and snapshot templates in, by the identity
-- the agent reports; NULL for none. A paused sandbox of a host with a store,
-- and a snapshot template made in one, can go to any host of that store.
ALTER TABLE hosts ADD COLUMN store_id TEXT;
ALTER TABLE templates ADD COLUMN store_id TEXT;

-- +goose Down
ALTER TABLE templates DROP COLUMN store_id;
ALTER TABLE hosts DROP COLUMN store_id;
