-- The oversell guard's estimate of what a decrementing marketplace shows
-- counts the orders placed after the last push landed (orders.placed_at
-- against marketplace_stock.last_synced_at), not the orders learned since the
-- push was computed: an order placed before the push landed was overwritten
-- by it, however late we learn of it (shared/src/publisher/estimate.rs).
ALTER TABLE marketplace_stock DROP COLUMN last_api_taken;

-- Every marketplace we serve takes ordered units off its own listing.
COMMENT ON COLUMN marketplaces.decrements_on_order IS
    'whether the marketplace takes ordered units off its listing itself; NULL = yes';
