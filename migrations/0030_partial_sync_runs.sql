-- A sync run cut short by the marketplace's rate limit or by the request
-- budget stores what it fetched and ends 'partial': its cursor only moves
-- when the walk it covers finished, and the next run catches up.
ALTER TABLE sync_runs DROP CONSTRAINT sync_runs_status_check;
ALTER TABLE sync_runs ADD CONSTRAINT sync_runs_status_check
    CHECK (status IN ('running', 'succeeded', 'partial', 'failed'));

-- When the modified sync last read this order on its own (Refurbed's
-- re-reads of open orders): the least recently checked go first, so re-reads
-- cut by the budget are spread over runs instead of always starting over.
ALTER TABLE orders ADD COLUMN rechecked_at TIMESTAMPTZ;
CREATE INDEX orders_open_by_recheck ON orders (marketplace_id, rechecked_at NULLS FIRST)
    WHERE status IN ('unpaid', 'pending', 'accepted');
