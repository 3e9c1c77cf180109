-- +goose Up
-- What a host's agent admits (issue 13): the vCPUs and memory (MiB) its
-- sandboxes may add up to after its overcommit and reserve, as the agent
-- reports them when it registers and in every heartbeat. NULL while it
-- has not (an agent older than the report): placement then assumes the
-- agent's default admission of cpu_cores and memory_mb.
ALTER TABLE hosts ADD COLUMN capacity_vcpus INTEGER;
ALTER TABLE hosts ADD COLUMN capacity_memory_mb INTEGER;

-- +goose Down
ALTER TABLE hosts DROP COLUMN capacity_memory_mb;
ALTER TABLE hosts DROP COLUMN capacity_vcpus;
