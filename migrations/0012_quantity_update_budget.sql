-- A budget of quantity writes per window, on top of the request rate: Back
-- Market also caps listing updates at about 2,000 SKU lines an hour
-- (marketplace-apis.md). NULL: no such budget.
ALTER TABLE marketplaces
    ADD COLUMN quantity_update_limit          INTEGER CHECK (quantity_update_limit > 0),
    ADD COLUMN quantity_update_window_seconds INTEGER NOT NULL DEFAULT 3600
        CHECK (quantity_update_window_seconds > 0);

UPDATE marketplaces SET quantity_update_limit = 2000 WHERE kind = 'backmarket';
