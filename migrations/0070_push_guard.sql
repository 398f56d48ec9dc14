-- The publisher's oversell guard (shared/src/domain/push_guard.rs).

-- Whether the marketplace decrements a listing itself when an order is
-- placed; NULL follows its kind (Back Market does).
ALTER TABLE marketplaces ADD COLUMN decrements_on_order BOOLEAN;

-- The units of the row's orders known (lock rows, any status) when the
-- quantity in last_api_quantity was computed: the orders learned since are
-- the ones the marketplace has taken off what we pushed.
ALTER TABLE marketplace_stock ADD COLUMN last_api_taken INTEGER;

-- The guard looks for a row's order items the locker has not applied yet.
CREATE INDEX order_items_by_variation ON order_items (variation_id);

-- The units each row's orders took (all lock rows of the row).
CREATE INDEX marketplace_stock_locks_by_row ON marketplace_stock_locks (stock_id);
