-- The three marketplaces stockfleet ships adapters for, pointed at the local
-- simulator (stockfleet-sim on 127.0.0.1:8900). In production, point base_url at
-- the marketplace and put the credential in the environment variable named by
-- credential_env. Offsets stagger the 6-hourly reconciliations.
INSERT INTO marketplaces (code, name, kind, base_url, credential_env, sync_offset_minutes,
                          rate_limit_requests, rate_limit_window_seconds)
VALUES
    ('backmarket', 'Back Market', 'backmarket', 'http://127.0.0.1:8900/backmarket', 'BACKMARKET_TOKEN', 0, 20, 10),
    ('refurbed', 'Refurbed', 'refurbed', 'http://127.0.0.1:8900/refurbed', 'REFURBED_TOKEN', 120, 10, 1),
    ('woocommerce', 'WooCommerce', 'woocommerce', 'http://127.0.0.1:8900/woocommerce', 'WOOCOMMERCE_CREDENTIALS', 240, 10, 1);
