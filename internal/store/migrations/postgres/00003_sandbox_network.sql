-- +goose Up
-- A sandbox's egress policy (wrenn.Network) as JSON; '' for sandboxes
-- recorded before policies existed, which had the default one.
ALTER TABLE sandboxes ADD COLUMN network TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE sandboxes DROP COLUMN network;
