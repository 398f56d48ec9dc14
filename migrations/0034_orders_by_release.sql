-- The modified sync of a marketplace without a modified-since filter
-- (Refurbed) prices a listing of the closed orders by counting the orders
-- released since the oldest open one it lost sight of (poller/reread.rs).
CREATE INDEX orders_by_release ON orders (marketplace_id, placed_at);
