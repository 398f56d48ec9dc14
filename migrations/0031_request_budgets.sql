-- One request budget per marketplace and endpoint class for the whole fleet
-- (docs/architecture.md, "Request budget"): a token bucket every poller,
-- publisher and CLI process leases permits from. Classes are disjoint slices
-- of the marketplace's limit, so a command (orders class) never waits behind
-- stock pushes (listings class):
--   orders   — order reads and order commands;
--   listings — catalogue reads and quantity writes. Its limit follows
--              marketplaces.rate_limit_* (the trigger below), which the API
--              and `stockfleet marketplace set` already change.
-- Back Market publishes 200 per 10 s in all, 20 per 10 s of it on listings:
-- orders 180 + listings 20. Refurbed publishes none; the simulator's 100 per
-- 10 s is split orders 60 + listings 40. WooCommerce core has none.
CREATE TABLE request_budgets (
    marketplace_id INTEGER NOT NULL REFERENCES marketplaces (id) ON DELETE CASCADE,
    class          TEXT NOT NULL CHECK (class IN ('orders', 'listings')),
    requests       INTEGER NOT NULL CHECK (requests > 0),
    window_seconds INTEGER NOT NULL CHECK (window_seconds > 0),
    -- the bucket: permits left at refilled_at
    tokens         DOUBLE PRECISION NOT NULL DEFAULT 0,
    refilled_at    TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    -- a 429's Retry-After: nobody leases before this
    blocked_until  TIMESTAMPTZ,
    PRIMARY KEY (marketplace_id, class)
);

CREATE FUNCTION sync_listing_budget() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO request_budgets (marketplace_id, class, requests, window_seconds)
    VALUES (NEW.id, 'listings', NEW.rate_limit_requests, NEW.rate_limit_window_seconds)
    ON CONFLICT (marketplace_id, class) DO UPDATE
        SET requests = EXCLUDED.requests, window_seconds = EXCLUDED.window_seconds;
    INSERT INTO request_budgets (marketplace_id, class, requests, window_seconds)
    VALUES (NEW.id, 'orders', CASE NEW.kind WHEN 'backmarket' THEN 180 WHEN 'refurbed' THEN 60 ELSE 100 END, 10)
    ON CONFLICT (marketplace_id, class) DO NOTHING;
    RETURN NEW;
END $$;

CREATE TRIGGER marketplaces_request_budgets
    AFTER INSERT OR UPDATE OF rate_limit_requests, rate_limit_window_seconds ON marketplaces
    FOR EACH ROW EXECUTE FUNCTION sync_listing_budget();

-- Refurbed's seeded 10 per second was the simulator's whole limit; listings get 40 per 10 s of it.
UPDATE marketplaces SET rate_limit_requests = 40, rate_limit_window_seconds = 10
WHERE kind = 'refurbed' AND rate_limit_requests = 10 AND rate_limit_window_seconds = 1;
UPDATE marketplaces SET rate_limit_requests = rate_limit_requests;

-- Leases up to `want` permits of one class in one statement (the row lock
-- serialises callers). The bucket refills at 75 % of the limit and holds at
-- most 10 % of it: a window of W then admits at most 0.1 L + 0.75 L (W + ttl)
-- / W, under L for a lease lifetime ttl up to W / 10. `reserve` (0..1) is the
-- share of the bucket a low-priority caller must leave. No row: no limit.
CREATE FUNCTION lease_request_permits(p_marketplace INTEGER, p_class TEXT, p_want INTEGER,
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
        g := GREATEST(0, LEAST(p_want, floor(avail - p_reserve * cap)::INTEGER));
    END IF;
    UPDATE request_budgets r SET tokens = avail - g, refilled_at = at
    WHERE r.marketplace_id = p_marketplace AND r.class = p_class;
    RETURN QUERY SELECT g, avail - g, cap, rate, b.window_seconds,
        GREATEST(0, COALESCE(EXTRACT(EPOCH FROM b.blocked_until - at), 0))::DOUBLE PRECISION;
END $$;
