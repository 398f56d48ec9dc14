-- Sold-outs confirmed (issue 29): a push that takes a listing to 0 is read
-- back zero_confirm_seconds later (at low priority, as a reconciliation of
-- that row), and a zero that did not land is sent again. A marketplace that
-- answers 200 without applying the write would otherwise show the unit
-- until the next 6-hourly reconciliation.
ALTER TABLE marketplaces
    ADD COLUMN zero_confirm_seconds INTEGER NOT NULL DEFAULT 60
        CHECK (zero_confirm_seconds BETWEEN 1 AND 86400);
ALTER TABLE marketplace_stock ADD COLUMN zero_confirm_due_at TIMESTAMPTZ;
CREATE INDEX marketplace_stock_zero_confirm_due ON marketplace_stock (zero_confirm_due_at)
    WHERE zero_confirm_due_at IS NOT NULL;
