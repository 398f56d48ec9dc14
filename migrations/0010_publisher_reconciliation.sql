-- Scheduled stock reconciliations (design §6) run once per slot of their
-- marketplace's schedule, whichever publisher instance gets there first: the
-- slot is recorded with the run and unique per marketplace.
ALTER TABLE sync_runs ADD COLUMN scheduled_for TIMESTAMPTZ;
CREATE UNIQUE INDEX sync_runs_one_per_slot ON sync_runs (marketplace_id, sync_type, scheduled_for)
    WHERE scheduled_for IS NOT NULL;
