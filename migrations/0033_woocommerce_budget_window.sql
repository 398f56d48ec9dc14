-- WooCommerce publishes no request limit; stockfleet seeded 10 per 1 s for
-- its listings class. A bucket holds 10 % of a window's limit, so that bucket
-- held one permit: every quantity write cost its own lease round trip to
-- PostgreSQL, and when the database was busy WooCommerce pushes fell to about
-- one a second. 100 per 10 s keeps the same average and lets a lease carry
-- several permits. A limit the seller set is left as it is.
UPDATE marketplaces SET rate_limit_requests = 100, rate_limit_window_seconds = 10
WHERE kind = 'woocommerce' AND rate_limit_requests = 10 AND rate_limit_window_seconds = 1;
