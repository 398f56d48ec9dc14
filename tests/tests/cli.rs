//! Operator commands as an operator runs them.

use stockfleet_tests::TestEnv;

#[tokio::test]
async fn marketplaces_are_listed_and_configured_without_sql() {
    let env = TestEnv::new().await;
    let set = env
        .cli(&[
            "marketplace",
            "set",
            "refurbed",
            "--base-url",
            "http://sim:8900/refurbed",
            "--rate-limit",
            "5/1",
            "--enabled",
            "false",
        ])
        .await;
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let row: (String, i32, i32, bool) = sqlx::query_as(
        "SELECT base_url, rate_limit_requests, rate_limit_window_seconds, sync_enabled
         FROM marketplaces WHERE code = 'refurbed'",
    )
    .fetch_one(&env.db)
    .await
    .unwrap();
    assert_eq!(row, ("http://sim:8900/refurbed".into(), 5, 1, false));

    let list = env.cli(&["marketplace", "list"]).await;
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(
        listed.contains("http://sim:8900/refurbed") && listed.contains("backmarket"),
        "{listed}"
    );

    let unknown = env
        .cli(&["marketplace", "set", "ebay", "--enabled", "true"])
        .await;
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown marketplace \"ebay\""));
    let bad = env
        .cli(&["marketplace", "set", "refurbed", "--rate-limit", "fast"])
        .await;
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("REQUESTS/SECONDS"));
}
