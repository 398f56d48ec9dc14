-- A low-priority caller leaves a whole number of permits in the bucket:
-- floor(reserve x capacity). 0031 subtracted the fraction itself, so a bucket
-- of one permit (capacity = 10 % of a limit of 10 per second, WooCommerce's
-- seeded listings rate) never granted a low-priority permit: floor(1 - 0.5) = 0,
-- and every stock increase on that marketplace waited for ever.
CREATE OR REPLACE FUNCTION lease_request_permits(p_marketplace INTEGER, p_class TEXT, p_want INTEGER,
                                                 p_reserve DOUBLE PRECISION)
RETURNS TABLE (granted INTEGER, tokens DOUBLE PRECISION, capacity DOUBLE PRECISION,
               refill_per_second DOUBLE PRECISION, window_seconds INTEGER,
               blocked_seconds DOUBLE PRECISION)
LANGUAGE plpgsql AS $$
DECLARE
    b request_budgets;
    at TIMESTAMPTZ;
    rate DOUBLE PRECISION;
    cap DOUBLE PRECISION;
    avail DOUBLE PRECISION;
    g INTEGER := 0;
BEGIN
    SELECT * INTO b FROM request_budgets r
    WHERE r.marketplace_id = p_marketplace AND r.class = p_class FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    at := clock_timestamp();
    rate := 0.75 * b.requests / b.window_seconds;
    cap := GREATEST(1.0, 0.1 * b.requests);
    avail := LEAST(cap, b.tokens + rate * GREATEST(0, EXTRACT(EPOCH FROM at - b.refilled_at)));
    IF b.blocked_until IS NULL OR b.blocked_until <= at THEN
        g := GREATEST(0, LEAST(p_want, floor(avail)::INTEGER - floor(p_reserve * cap)::INTEGER));
    END IF;
    UPDATE request_budgets r SET tokens = avail - g, refilled_at = at
    WHERE r.marketplace_id = p_marketplace AND r.class = p_class;
    RETURN QUERY SELECT g, avail - g, cap, rate, b.window_seconds,
        GREATEST(0, COALESCE(EXTRACT(EPOCH FROM b.blocked_until - at), 0))::DOUBLE PRECISION;
END $$;
