-- A token may be limited to some marketplaces (a shop team that runs only
-- WooCommerce): it then sees and changes only their rows. NULL: every
-- marketplace. Codes are checked against the marketplaces table when the
-- token is made.
ALTER TABLE api_tokens ADD COLUMN marketplaces TEXT[]
    CHECK (marketplaces IS NULL OR cardinality(marketplaces) > 0);
