-- +goose Up
-- What a sandbox's inactivity timeout does ('destroy' or 'pause'), why a
-- paused sandbox was paused ('timeout': the next operation resumes it;
-- '' otherwise), and the create options envs (the default environment of
-- its commands) and metadata (the team's labels), each a JSON object of
-- strings, '' for none.
ALTER TABLE sandboxes ADD COLUMN on_timeout TEXT NOT NULL DEFAULT 'destroy';
ALTER TABLE sandboxes ADD COLUMN paused_by TEXT NOT NULL DEFAULT '';
ALTER TABLE sandboxes ADD COLUMN envs TEXT NOT NULL DEFAULT '';
ALTER TABLE sandboxes ADD COLUMN metadata TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE sandboxes DROP COLUMN metadata;
ALTER TABLE sandboxes DROP COLUMN envs;
ALTER TABLE sandboxes DROP COLUMN paused_by;
ALTER TABLE sandboxes DROP COLUMN on_timeout;
