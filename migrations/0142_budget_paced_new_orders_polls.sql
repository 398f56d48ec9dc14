-- New-orders polls are paced by the request budget (issue 29): as often as
-- the marketplace's orders budget has headroom, never faster than
-- order_poll_fastest_seconds, never slower than order_poll_interval_seconds
-- (which keeps pacing the modified sync). A column with a constant default
-- is added without rewriting the table.
ALTER TABLE marketplaces
    ADD COLUMN order_poll_fastest_seconds INTEGER NOT NULL DEFAULT 1
        CHECK (order_poll_fastest_seconds > 0);
