-- One active token per name, so `stockfleet token revoke <name>` is unambiguous
-- and the API's actor names in history mean one holder.
CREATE UNIQUE INDEX api_tokens_active_name ON api_tokens (name) WHERE revoked_at IS NULL;
