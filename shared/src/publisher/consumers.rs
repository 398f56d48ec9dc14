//! The per-marketplace consumer set: a consumer on each of a marketplace's
//! two queues (order commands, stock pushes), both with the one handler (and
//! so the one budget view) of that marketplace, following the marketplaces table.

use super::{Options, PublisherHandler};
use crate::bus::{self, QueueSpec};
use crate::marketplace::directory::MarketplaceRow;
use std::collections::HashMap;
use std::sync::Arc;

/// The running marketplace consumers, each with its own stop token so one can
/// be replaced without stopping the others.
#[derive(Default)]
pub(super) struct Consumers {
    running: HashMap<String, Running>,
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
    pub(super) async fn follow(
        &mut self,
        worker: &crate::worker::Worker,
        options: &Options,
        rows: Vec<MarketplaceRow>,
    ) {
        let codes: Vec<String> = rows.iter().map(|row| row.code.clone()).collect();
        for code in self.running.keys().cloned().collect::<Vec<_>>() {
            if !codes.contains(&code) {
                tracing::info!(marketplace = %code, "marketplace removed; no longer publishing to it");
                self.stop(&code);
            }
        }
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
            let created_queue = match self.start(worker, options, row.clone()).await {
                Ok(created_queue) => created_queue,
                Err(error) => {
                    // Its queue keeps the messages until a publisher that can reach it runs.
                    tracing::error!(marketplace = %row.code, error = format!("{error:#}"), "not publishing to this marketplace");
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
    }

    /// Starts serving `row`; true when its queue had to be created.
    async fn start(
        &mut self,
        worker: &crate::worker::Worker,
        options: &Options,
        row: MarketplaceRow,
    ) -> anyhow::Result<bool> {
        let config = (options.configure)(&row)?;
        let handler = PublisherHandler::new(
            worker.db.clone(),
            row.clone(),
            config,
            options.calls_in_flight,
        )?;
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
                settings.prefetch = settings
                    .prefetch
                    .max(u16::try_from(settings.batch_size).unwrap_or(u16::MAX));
            }
            let consumed = bus::consumer::run(
                worker.bus.clone(),
                spec,
                settings,
                handler.clone(),
                worker.tasks.clone(),
                stop.clone(),
            );
            self.tasks
                .spawn(async move { (code, generation, consumed.await) });
        }
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
