//! The per-marketplace consumer set: a consumer on each of a marketplace's
//! two queues (order commands, stock pushes), both with the one handler (and
//! so the one budget view) of that marketplace, following the marketplaces table.

use super::{Options, PublisherHandler};
use crate::bus::{self, QueueSpec};
use crate::marketplace::OrderQuery;
use crate::marketplace::budget::{Priority, with_priority};
use crate::marketplace::directory::MarketplaceRow;
use crate::supervise::TaskState;
use std::collections::HashMap;
use std::sync::Arc;

/// A marketplace's name among the tasks until its consumers report themselves.
fn starting_task(code: &str) -> String {
    format!("publisher {code}")
}

/// The running marketplace consumers, each with its own stop token so one can
/// be replaced without stopping the others.
#[derive(Default)]
pub(super) struct Consumers {
    running: HashMap<String, Running>,
    /// Marketplaces that could not be started, reported down until they start.
    unstarted: std::collections::HashSet<String>,
    pub(super) tasks: tokio::task::JoinSet<(String, u64, anyhow::Result<()>)>,
    generation: u64,
}

struct Running {
    row: MarketplaceRow,
    generation: u64,
    stop: tokio_util::sync::CancellationToken,
}

impl Consumers {
    /// Starts, replaces and stops consumers so they serve exactly `rows`.
    /// False when a marketplace could not be started (the broker did not
    /// answer): it shows as down in `/readyz` and the caller tries again soon.
    pub(super) async fn follow(
        &mut self,
        worker: &crate::worker::Worker,
        options: &Options,
        rows: Vec<MarketplaceRow>,
    ) -> bool {
        let codes: Vec<String> = rows.iter().map(|row| row.code.clone()).collect();
        for code in self.running.keys().cloned().collect::<Vec<_>>() {
            if !codes.contains(&code) {
                tracing::info!(marketplace = %code, "marketplace removed; no longer publishing to it");
                self.stop(&code);
            }
        }
        // One removed before it could start is no longer waited for.
        self.unstarted.retain(|code| {
            let wanted = codes.contains(code);
            if !wanted {
                worker.tasks.remove(&starting_task(code));
            }
            wanted
        });
        let mut wanted = Vec::new();
        for row in rows {
            if self
                .running
                .get(&row.code)
                .is_some_and(|running| running.row.same_connection(&row))
            {
                continue;
            }
            if self.running.contains_key(&row.code) {
                tracing::info!(marketplace = %row.code, "marketplace settings changed; restarting its consumer");
                self.stop(&row.code);
            }
            let handler = match (options.configure)(&row)
                .map_err(anyhow::Error::from)
                .and_then(|config| {
                    PublisherHandler::new(
                        worker.db.clone(),
                        row.clone(),
                        config,
                        options.calls_in_flight,
                        options.outage,
                    )
                }) {
                Ok(handler) => handler,
                Err(error) => {
                    // Its queue keeps the messages until a publisher that can reach it runs.
                    tracing::error!(marketplace = %row.code, error = format!("{error:#}"), "not publishing to this marketplace");
                    continue;
                }
            };
            // Reported from now on: every marketplace this process will
            // serve is in `/readyz` before any broker call is made for it.
            worker
                .tasks
                .set(&starting_task(&row.code), TaskState::Starting);
            wanted.push((row, handler));
        }
        let mut all_started = true;
        for (row, handler) in wanted {
            let task = starting_task(&row.code);
            let created_queue = match self.start(worker, options, row.clone(), handler).await {
                Ok(created_queue) => {
                    worker.tasks.remove(&task);
                    self.unstarted.remove(&row.code);
                    created_queue
                }
                Err(error) => {
                    tracing::warn!(marketplace = %row.code, error = format!("{error:#}"), "cannot start publishing to this marketplace; trying again in 2 s");
                    worker.tasks.down(&task, format!("cannot start: {error:#}"));
                    self.unstarted.insert(row.code.clone());
                    all_started = false;
                    continue;
                }
            };
            if created_queue {
                // Changes announced before its queue existed went to the
                // unroutable queue: a reconciliation brings every row up to date.
                let summary = crate::reconcile::run(
                    &worker.db,
                    &row.code,
                    false,
                    crate::poller::Trigger::Fleet,
                )
                .await;
                if let Err(error) = summary {
                    tracing::warn!(marketplace = %row.code, %error, "could not reconcile the new marketplace");
                }
            }
        }
        self.generation += 1;
        all_started
    }

    /// Starts serving `row`; true when its queue had to be created. Each
    /// broker call is bounded by `AMQP_TIMEOUT_SECONDS`.
    async fn start(
        &mut self,
        worker: &crate::worker::Worker,
        options: &Options,
        row: MarketplaceRow,
        handler: PublisherHandler,
    ) -> anyhow::Result<bool> {
        let specs = QueueSpec::publishers(&row.code);
        let stock_queue = worker.bus.topology.queue(&QueueSpec::publisher(&row.code));
        let created_queue = !worker.bus.queue_exists(&stock_queue).await?;
        worker.bus.declare(&specs).await?;
        let stop = worker.shutdown.child_token();
        let generation = self.generation;
        let handler = Arc::new(handler);
        for spec in specs {
            let code = row.code.clone();
            let mut settings = worker.settings.consumer.clone();
            if spec.name == QueueSpec::publisher(&row.code).name {
                settings.batch_size = settings.batch_size.max(options.stock_batch);
                settings.batches_in_flight = options.stock_batches_in_flight.max(1);
                // Room for a second full batch while one is under way; many
                // small batches fit in it, a backlog goes two big ones at a time.
                let unacked = settings.batch_size * 2;
                settings.prefetch = settings
                    .prefetch
                    .max(u16::try_from(unacked).unwrap_or(u16::MAX));
            }
            let consumed = bus::consumer::run_pausable(
                worker.bus.clone(),
                spec,
                settings,
                handler.clone(),
                (worker.tasks.clone(), stop.clone()),
                handler.pause.signal(),
            );
            self.tasks
                .spawn(async move { (code, generation, consumed.await) });
        }
        // The pause its consumers follow, and the probe that ends an outage.
        let (code, following) = (row.code.clone(), stop.clone());
        self.tasks.spawn(async move {
            let probe = || async {
                let page = with_priority(
                    Priority::Low,
                    handler.adapter.list_orders(&OrderQuery::New, None),
                );
                page.await.map(|_| ())
            };
            handler.pause.follow(probe, following).await;
            (code, generation, Ok(()))
        });
        self.running.insert(
            row.code.clone(),
            Running {
                row,
                generation,
                stop,
            },
        );
        Ok(created_queue)
    }

    fn stop(&mut self, code: &str) {
        if let Some(running) = self.running.remove(code) {
            running.stop.cancel();
        }
    }

    /// A consumer task ended: an error of a consumer still wanted stops the
    /// worker (its loop panicked: lost channels are re-opened in the loop).
    pub(super) fn ended(
        &mut self,
        ended: Result<(String, u64, anyhow::Result<()>), tokio::task::JoinError>,
    ) -> anyhow::Result<()> {
        let (code, generation, outcome) = ended?;
        let wanted = self
            .running
            .get(&code)
            .is_some_and(|r| r.generation == generation);
        match outcome {
            Err(error) if wanted => Err(error.context(format!("publishing to {code}"))),
            Err(error) => {
                tracing::warn!(marketplace = %code, error = format!("{error:#}"), "a replaced consumer ended with an error");
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }

    pub(super) async fn stop_all(&mut self) {
        for running in self.running.values() {
            running.stop.cancel();
        }
        while let Some(ended) = self.tasks.join_next().await {
            if let Ok((code, _, Err(error))) = ended {
                tracing::warn!(marketplace = %code, error = format!("{error:#}"), "consumer ended with an error");
            }
        }
    }
}
