//! The seeded random order generator: a steady flow of orders for demos and
//! benchmarks. The same seed and config give the same orders (marketplace,
//! SKUs, quantities, payment outcomes) in the same sequence.

use crate::Sim;
use crate::state::Marketplace;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// How often the running generator wakes up to place due orders.
const TICK: Duration = Duration::from_millis(10);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeneratorConfig {
    pub seed: u64,
    /// 0 = only orders asked for with `step`.
    pub orders_per_second: f64,
    /// Default: all three.
    pub marketplaces: Vec<Marketplace>,
    /// Weighted SKU mix; empty = every listing of the marketplace, evenly.
    pub skus: Vec<SkuWeight>,
    pub max_items: u32,
    pub max_quantity: u32,
    pub progression: Progression,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            seed: 1,
            orders_per_second: 1.0,
            marketplaces: Marketplace::ALL.to_vec(),
            skus: Vec::new(),
            max_items: 1,
            max_quantity: 1,
            progression: Progression::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkuWeight {
    pub sku: String,
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

/// What happens to an order after it is placed. With `pay_after_ms` > 0,
/// Back Market orders start unpaid (line state 0) and WooCommerce orders
/// `pending`; after the delay they are paid (1 / `processing`) or, at
/// `unpaid_rate`, never paid (7 / `failed`). Refurbed only lists orders
/// once paid, so its orders start NEW.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Progression {
    pub pay_after_ms: u64,
    pub unpaid_rate: f64,
}

struct Payment {
    due: Instant,
    marketplace: Marketplace,
    order_id: u64,
    paid: bool,
}

pub(crate) struct Generator {
    config: GeneratorConfig,
    rng: StdRng,
    started: Instant,
    /// Orders placed by the timed flow (not by `step`).
    timed: u64,
    pub created: u64,
    /// Orders it could not place: no listing showed units, or the chosen
    /// listing showed fewer than the order asked for.
    pub refused: u64,
    payments: VecDeque<Payment>,
}

impl Generator {
    pub fn new(config: GeneratorConfig) -> Result<Self, String> {
        if !(config.orders_per_second >= 0.0 && config.orders_per_second.is_finite()) {
            return Err("orders_per_second must be a number >= 0".into());
        }
        if !(0.0..=1.0).contains(&config.progression.unpaid_rate) {
            return Err("unpaid_rate must be between 0 and 1".into());
        }
        if config.marketplaces.is_empty() || config.max_items == 0 || config.max_quantity == 0 {
            return Err("marketplaces, max_items and max_quantity must not be empty or 0".into());
        }
        Ok(Generator {
            rng: StdRng::seed_from_u64(config.seed),
            config,
            started: Instant::now(),
            timed: 0,
            created: 0,
            refused: 0,
            payments: VecDeque::new(),
        })
    }

    /// Places `count` orders now and settles the payments that are due.
    /// Returns the ids of the orders placed.
    pub fn step(&mut self, sim: &Sim, count: u64, now: Instant) -> Vec<u64> {
        let mut placed = Vec::new();
        for _ in 0..count {
            if let Some(id) = self.place(sim, now) {
                placed.push(id);
            }
        }
        while self.payments.front().is_some_and(|p| p.due <= now) {
            let payment = self.payments.pop_front().expect("checked");
            let to = match (payment.marketplace, payment.paid) {
                (Marketplace::BackMarket, true) => "1",
                (Marketplace::BackMarket, false) => "7",
                (_, true) => "processing",
                (_, false) => "failed",
            };
            // The order may have moved on meanwhile (e.g. cancelled): then nothing to do.
            let _ = sim.move_order(payment.marketplace, payment.order_id, None, to);
        }
        placed
    }

    /// The timed flow: as many orders as the rate says are due by now.
    fn tick(&mut self, sim: &Sim, now: Instant) {
        let due =
            (now.duration_since(self.started).as_secs_f64() * self.config.orders_per_second) as u64;
        let count = due.saturating_sub(self.timed);
        self.timed += count;
        self.step(sim, count, now);
    }

    fn place(&mut self, sim: &Sim, now: Instant) -> Option<u64> {
        let config = &self.config;
        let marketplace = config.marketplaces[self.rng.random_range(0..config.marketplaces.len())];
        // Only listings that show units: a marketplace sells nothing at 0.
        let mix: Vec<SkuWeight> = {
            let mut inner = sim.lock();
            let listings = &inner.mp(marketplace).listings;
            let shown = |sku: &str| listings.get(sku).is_none_or(|l| l.quantity > 0);
            if config.skus.is_empty() {
                listings
                    .values()
                    .filter(|l| l.quantity > 0)
                    .map(|l| SkuWeight {
                        sku: l.sku.clone(),
                        weight: 1,
                    })
                    .collect()
            } else {
                config
                    .skus
                    .iter()
                    .filter(|s| shown(&s.sku))
                    .cloned()
                    .collect()
            }
        };
        let total: u64 = mix.iter().map(|s| u64::from(s.weight)).sum();
        if total == 0 {
            self.refused += 1;
            return None;
        }
        let lines = self.rng.random_range(1..=config.max_items);
        let items: Vec<(String, u32)> = (0..lines)
            .map(|_| {
                let mut pick = self.rng.random_range(0..total);
                let sku = mix
                    .iter()
                    .find(|s| {
                        let hit = pick < u64::from(s.weight);
                        pick = pick.saturating_sub(u64::from(s.weight));
                        hit
                    })
                    .map(|s| s.sku.clone())
                    .unwrap_or_default();
                (sku, self.rng.random_range(1..=config.max_quantity))
            })
            .collect();
        let progression = &config.progression;
        let delayed = progression.pay_after_ms > 0 && marketplace != Marketplace::Refurbed;
        let state = match (marketplace, delayed) {
            (Marketplace::BackMarket, true) => "0",
            (Marketplace::WooCommerce, true) => "pending",
            _ => marketplace.initial_state(),
        };
        let paid = self.rng.random::<f64>() >= progression.unpaid_rate;
        let Ok(order) = sim.create_order(marketplace, &items, Some(state), None) else {
            self.refused += 1;
            return None;
        };
        self.created += 1;
        if delayed {
            self.payments.push_back(Payment {
                due: now + Duration::from_millis(progression.pay_after_ms),
                marketplace,
                order_id: order.id,
                paid,
            });
        }
        Some(order.id)
    }
}

/// The generator and the task that runs it.
#[derive(Default)]
pub(crate) struct Runner {
    generator: Mutex<Option<Generator>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Runner {
    fn lock_task(&self) -> MutexGuard<'_, Option<JoinHandle<()>>> {
        self.task.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn generator(&self) -> MutexGuard<'_, Option<Generator>> {
        self.generator.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn running(&self) -> bool {
        self.lock_task()
            .as_ref()
            .is_some_and(|task| !task.is_finished())
    }

    /// The config, orders created and orders refused.
    pub fn config(&self) -> Option<(GeneratorConfig, u64, u64)> {
        self.generator()
            .as_ref()
            .map(|g| (g.config.clone(), g.created, g.refused))
    }

    pub fn stop(&self) {
        if let Some(task) = self.lock_task().take() {
            task.abort();
        }
    }
}

/// Replaces the generator and starts its timed flow.
pub(crate) fn start(sim: &Arc<Sim>, config: GeneratorConfig) -> Result<(), String> {
    let generator = Generator::new(config)?;
    sim.generator.stop();
    *sim.generator.generator() = Some(generator);
    let task_sim = sim.clone();
    let task = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            ticker.tick().await;
            if let Some(generator) = task_sim.generator.generator().as_mut() {
                generator.tick(&task_sim, Instant::now());
            }
        }
    });
    *sim.generator.lock_task() = Some(task);
    Ok(())
}
