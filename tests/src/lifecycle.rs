//! How a test's bus prefix and database begin and end: the leased prefix's
//! queues emptied and its topology declared before the test; after it, every
//! queue it used emptied (those of marketplaces it added, deleted) and its
//! database dropped, each step bounded so a cleanup never hangs a run.

use crate::broker;
use sqlx::PgPool;
use std::time::Duration;
use stockfleet::bus::{Bus, QueueSpec, Topology};

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Empties the queues of a leased prefix and checks they are this version's
/// (a pool prefix declared by an older harness is re-created), then declares
/// this test's topology.
pub(crate) async fn prepare(bus: &Bus, amqp_url: &str, codes: &[String]) {
    let connection = lapin::Connection::connect(amqp_url, lapin::ConnectionProperties::default())
        .await
        .expect("broker");
    let queues = broker::queues(&bus.topology, codes);
    broker::purge(&connection, &queues).await;
    let specs = QueueSpec::all(codes.iter().map(String::as_str));
    if let Err(error) = bus.declare(&specs).await {
        eprintln!(
            "re-creating the queues of {}: {error:#}",
            bus.topology.prefix
        );
        broker::delete(&connection, &queues).await;
        bus.declare(&specs).await.expect("declare topology");
    }
    let _ = connection.close(200, "prepared".into()).await;
}

/// Best effort, each step bounded: a cleanup must never hang a test run.
pub(crate) async fn cleanup(
    name: String,
    amqp_url: String,
    database_url: String,
    topologies: Vec<Topology>,
) {
    let step = Duration::from_secs(10);
    // Marketplaces a test added have queues too: deleted, since the next test
    // on this prefix does not have them.
    let codes = async {
        let db = PgPool::connect(&database_url).await.ok()?;
        let codes = stockfleet::marketplace::directory::codes(&db).await.ok()?;
        db.close().await;
        Some(codes)
    };
    let codes = tokio::time::timeout(step, codes)
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    let added: Vec<String> = codes
        .into_iter()
        .filter(|code| !broker::SEEDED.contains(&code.as_str()))
        .collect();
    let bus = async {
        let connection =
            lapin::Connection::connect(&amqp_url, lapin::ConnectionProperties::default()).await?;
        let seeded: Vec<String> = broker::SEEDED.map(String::from).to_vec();
        let mut queues: Vec<String> = topologies
            .iter()
            .flat_map(|topology| broker::queues(topology, &seeded))
            .collect();
        queues.sort();
        queues.dedup();
        broker::purge(&connection, &queues).await;
        let added: Vec<String> = QueueSpec::all(added.iter().map(String::as_str))
            .iter()
            .filter(|spec| spec.single_active_consumer) // the publisher queues
            .flat_map(|spec| topologies[0].queue_names(spec))
            .collect();
        broker::delete(&connection, &added).await;
        let _ = tokio::time::timeout(step, connection.close(200, "test over".into())).await;
        Ok::<_, lapin::Error>(())
    };
    if tokio::time::timeout(step * 10, bus).await.is_err() {
        eprintln!("cleanup: broker cleanup of {name} timed out");
    }
    if tokio::time::timeout(step * 3, drop_database(&name))
        .await
        .is_err()
    {
        eprintln!("cleanup: dropping database {name} timed out");
    }
}

/// Drops a test's database on the local PostgreSQL, connections and all.
/// `name` is ours (a prefix and a UUID), never input.
pub async fn drop_database(name: &str) -> sqlx::Result<()> {
    let admin = PgPool::connect(ADMIN_URL).await?;
    let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
    sqlx::query(sqlx::AssertSqlSafe(drop))
        .execute(&admin)
        .await?;
    admin.close().await;
    Ok(())
}
