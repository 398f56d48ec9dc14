//! A test's hold on a marketplace's listing budget and on what the
//! publisher believes it last pushed: the set-up of tests about pushes that
//! wait for permits.

use crate::TestEnv;

impl TestEnv {
    /// `marketplace`'s listing budget as it stands: (requests, window_seconds).
    pub async fn listing_budget(&self, marketplace: &str) -> (i32, i32) {
        sqlx::query_as(
            "SELECT requests, window_seconds FROM request_budgets
             WHERE class = 'listings' AND marketplace_id = (SELECT id FROM marketplaces WHERE code = $1)",
        )
        .bind(marketplace)
        .fetch_one(&self.db)
        .await
        .expect("the listing budget")
    }

    /// Sets `marketplace`'s listing budget, with `tokens` in the bucket now.
    pub async fn set_listing_budget(
        &self,
        marketplace: &str,
        (requests, window_seconds): (i32, i32),
        tokens: f64,
    ) {
        sqlx::query(
            "UPDATE request_budgets SET requests = $2, window_seconds = $3, tokens = $4,
                    refilled_at = clock_timestamp()
             WHERE class = 'listings' AND marketplace_id = (SELECT id FROM marketplaces WHERE code = $1)",
        )
        .bind(marketplace)
        .bind(requests)
        .bind(window_seconds)
        .bind(tokens)
        .execute(&self.db)
        .await
        .expect("set the listing budget");
    }

    /// High priority may take the 2 permits in the bucket; low priority
    /// (increases, their reads) none for about an hour.
    pub async fn listing_budget_for_high_priority_only(&self, marketplace: &str) {
        self.set_listing_budget(marketplace, (40, 100_000), 2.9)
            .await;
    }

    /// Every stock row was pushed a minute ago at its buffered quantity
    /// (90 % of listed, rounded down), as the marketplace already shows.
    pub async fn pushed_a_minute_ago(&self) {
        sqlx::query(
            "UPDATE marketplace_stock SET last_api_quantity = floor(listed_stock * 0.9),
                    last_synced_at = now() - interval '1 minute'",
        )
        .execute(&self.db)
        .await
        .expect("record the last pushes");
    }
}
