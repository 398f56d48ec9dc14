-- Order sync schedules per marketplace (design §6). New and modified orders
-- are polled every order_poll_interval_seconds; care and incomplete less often.
ALTER TABLE marketplaces
    ADD COLUMN care_poll_interval_seconds       INTEGER NOT NULL DEFAULT 900 CHECK (care_poll_interval_seconds > 0),
    ADD COLUMN incomplete_poll_interval_seconds INTEGER NOT NULL DEFAULT 900 CHECK (incomplete_poll_interval_seconds > 0),
    -- the modified sync re-reads this far behind its cursor, so clock skew and
    -- late-committed changes on the marketplace's side are not missed
    ADD COLUMN modified_overlap_seconds         INTEGER NOT NULL DEFAULT 300 CHECK (modified_overlap_seconds >= 0);

-- The scheduler asks for the latest run of every (marketplace, type) each tick.
CREATE INDEX sync_runs_latest_success ON sync_runs (marketplace_id, sync_type, started_at DESC)
    WHERE status = 'succeeded';
