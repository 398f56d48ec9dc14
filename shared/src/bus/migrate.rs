//! `stockfleet queues migrate`: brings the queues of a running deployment to
//! this version's topology without losing a message, saying what it does.
//!
//! - A work queue declared with other arguments than this version's (a
//!   publisher queue from before `x-single-active-consumer`) cannot be
//!   redeclared: the broker refuses it (PRECONDITION_FAILED). It is unbound,
//!   its messages move to a temporary queue `Q.migrating`, it is deleted and
//!   declared again, and the messages move back. Messages published meanwhile
//!   go to `<prefix>.unroutable`, where they are kept (`stockfleet queues`
//!   shows them). Its consumers must be stopped first (refused otherwise).
//! - The retry queues each consumer queue had per delay (`Q.retry.<ms>ms`) are
//!   emptied into the shared delay queue of the same delay, then deleted.

use super::declare::{is_precondition_failed, quorum};
use super::topology::{RETRY_DELAY, delay_label};
use super::{Bus, Outgoing, Publisher, QueueSpec, Route, is_not_found, passive_declare};
use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;

/// Migrates the queues of a fleet serving `marketplaces`, telling `report`
/// each step as it is done (or, with `dry_run`, what it would do).
pub async fn migrate(
    bus: &Bus,
    marketplaces: &[String],
    dry_run: bool,
    report: &mut Vec<String>,
) -> anyhow::Result<()> {
    if !dry_run {
        // The exchanges and the shared delay queues the moved retries go to.
        bus.declare(&[]).await?;
    }
    for spec in QueueSpec::all(marketplaces.iter().map(String::as_str)) {
        let queue = bus.topology.queue(&spec);
        match count(bus, &queue).await? {
            None => report.push(format!("{queue}: absent, the workers will declare it")),
            Some((messages, consumers)) if !declares_as_is(bus, &spec).await? => {
                anyhow::ensure!(
                    consumers == 0,
                    "{queue} must be re-created but has {consumers} consumer(s): stop them, then run the migration again"
                );
                if dry_run {
                    report.push(format!("{queue}: would be re-created with this version's arguments ({messages} message(s) kept)"));
                } else {
                    let kept = recreate(bus, &spec).await?;
                    report.push(format!(
                        "{queue}: re-created with this version's arguments ({kept} message(s) kept)"
                    ));
                }
            }
            Some(_) if !dry_run => bus.declare(std::slice::from_ref(&spec)).await?,
            Some(_) => {}
        }
        for delay in &bus.topology.retry_delays {
            let legacy = bus.topology.legacy_retry_queue(&spec, *delay);
            let Some((messages, _)) = count(bus, &legacy).await? else {
                continue;
            };
            let shared = bus.topology.delay_queue(*delay);
            if dry_run {
                report.push(format!(
                    "{legacy}: would move {messages} message(s) to {shared} and be deleted"
                ));
                continue;
            }
            let header = (RETRY_DELAY, delay_label(*delay));
            let moved =
                move_all(bus, &legacy, bus.topology.retry_route(&spec), Some(header)).await?;
            delete(bus, &legacy).await?;
            report.push(format!(
                "{legacy}: moved {moved} message(s) to {shared}, deleted"
            ));
        }
    }
    Ok(())
}

/// Ready messages and consumers of `queue`, or None when it does not exist.
async fn count(bus: &Bus, queue: &str) -> anyhow::Result<Option<(u32, u32)>> {
    let channel = bus.channel().await?;
    match passive_declare(&channel, queue).await {
        Ok(declared) => {
            channel.close(200, "counted".into()).await.ok();
            Ok(Some((declared.message_count(), declared.consumer_count())))
        }
        Err(error) if is_not_found(&error) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// Whether `spec`'s existing work queue accepts this version's arguments.
async fn declares_as_is(bus: &Bus, spec: &QueueSpec) -> anyhow::Result<bool> {
    // A channel of its own: a refused declaration closes it.
    let channel = bus.channel().await?;
    let options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let declared = channel
        .queue_declare(
            bus.topology.queue(spec).as_str().into(),
            options,
            bus.topology.work_queue_arguments(spec),
        )
        .await;
    match declared {
        Ok(_) => {
            channel.close(200, "checked".into()).await.ok();
            Ok(true)
        }
        Err(error) if is_precondition_failed(&error) => Ok(false),
        Err(error) => Err(error.into()),
    }
}

/// Moves the work queue's messages aside, re-creates it, moves them back.
async fn recreate(bus: &Bus, spec: &QueueSpec) -> anyhow::Result<u64> {
    let queue = bus.topology.queue(spec);
    let aside = format!("{queue}.migrating");
    let channel = bus.channel().await?;
    let options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(aside.as_str().into(), options, quorum())
        .await?;
    channel.close(200, "declared".into()).await.ok();
    let to = |name: &str| Route {
        exchange: String::new(),
        routing_key: name.to_owned(),
    };
    // Unbound first, so nothing arrives while it is emptied (what is
    // published meanwhile is kept in the unroutable queue).
    let channel = bus.channel().await?;
    for (exchange, pattern) in &spec.bindings {
        channel
            .queue_unbind(
                queue.as_str().into(),
                bus.topology.exchange(*exchange).as_str().into(),
                pattern.as_str().into(),
                FieldTable::default(),
            )
            .await?;
    }
    channel.close(200, "unbound".into()).await.ok();
    let kept = move_all(bus, &queue, to(&aside), None).await?;
    delete(bus, &queue).await?;
    bus.declare(std::slice::from_ref(spec)).await?;
    move_all(bus, &aside, to(&queue), None).await?;
    delete(bus, &aside).await?;
    Ok(kept)
}

/// Moves every message of `from` to `to`, each confirmed before it is
/// acknowledged (a crash in between duplicates, never loses); returns how many.
async fn move_all(
    bus: &Bus,
    from: &str,
    to: Route,
    header: Option<(&str, String)>,
) -> anyhow::Result<u64> {
    let publisher = Publisher::new(bus).await?;
    let channel = publisher.channel().clone();
    let mut moved = 0;
    while let Some(message) = channel
        .basic_get(from.into(), BasicGetOptions { no_ack: false })
        .await?
    {
        let delivery = message.delivery;
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        if let Some((key, value)) = &header {
            super::headers::set_str(&mut headers, key, value);
        }
        publisher
            .publish_all(vec![Outgoing::copy_of(&delivery, headers, &to)])
            .await?;
        channel
            .basic_ack(delivery.delivery_tag, BasicAckOptions::default())
            .await?;
        moved += 1;
    }
    publisher.close().await;
    Ok(moved)
}

/// Deletes `queue`, refusing if it is not empty (quorum queues do not take
/// the `if-empty` flag, so it is counted first).
async fn delete(bus: &Bus, queue: &str) -> anyhow::Result<()> {
    if let Some((messages, _)) = count(bus, queue).await? {
        anyhow::ensure!(
            messages == 0,
            "{queue} is not empty ({messages} message(s) left); not deleted"
        );
    }
    let channel = bus.channel().await?;
    channel
        .queue_delete(queue.into(), QueueDeleteOptions::default())
        .await?;
    channel.close(200, "deleted".into()).await.ok();
    Ok(())
}
