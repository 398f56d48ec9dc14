-- The oversell guard asks whether a row has order items the locker has not
-- applied yet. It looked for lock rows of every item of the variation's
-- whole history, so the question grew with the history. The ledger now marks
-- an item when it inserts the item's lock, and only unmarked items that can
-- need a lock are indexed: the question costs the items in flight.
ALTER TABLE order_items ADD COLUMN lock_applied BOOLEAN NOT NULL DEFAULT false;

UPDATE order_items i SET lock_applied = true
FROM orders o, marketplace_stock_locks k
WHERE o.id = i.order_id
  AND k.marketplace_id = o.marketplace_id
  AND k.order_external_id = o.external_id
  AND k.order_item_external_id = i.external_id;

DROP INDEX order_items_by_variation;
CREATE INDEX order_items_awaiting_lock ON order_items (variation_id)
    WHERE NOT lock_applied AND status IN ('unpaid', 'pending', 'accepted', 'shipped');
