//! One batch of a marketplace's queue: sorted into order commands (grouped
//! by order) and stock rows (coalesced), then worked side by side.
//!
//! Commands are the orders class, pushes the listings class: they run at the
//! same time, so neither waits for the other's permits. Within each, up to
//! `calls_in_flight` calls are under way at once (one order's commands stay
//! in sequence); the fleet's budget paces them and serves the high-priority
//! ones (decreases, commands) first, and decreases are started first.

use super::PublisherHandler;
use super::rows::Group;
use crate::bus::{Handler, HandlerError, Incoming};
use crate::events::{ACCEPT_ORDERLINE, RECONCILIATION, STOCK_CHANGED, StockChanged};
use futures::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

impl Handler for PublisherHandler {
    async fn handle(&self, batch: &[Incoming]) -> Vec<Result<(), HandlerError>> {
        let started = std::time::Instant::now();
        let mut results: Vec<Result<(), HandlerError>> = vec![Ok(()); batch.len()];
        let sorted = sort(batch, &self.marketplace.code, &mut results);
        let rows = sorted.groups.len();
        let order_commands =
            sorted.accepts.len() + sorted.commands.iter().map(Vec::len).sum::<usize>();
        // Commands (orders class) and pushes (listings class) go side by
        // side: an accept never waits for a push's permit, nor the reverse.
        let (commands, pushes) = tokio::join!(
            self.run_commands(batch, sorted.accepts, sorted.commands),
            self.run_pushes(batch, sorted.groups)
        );
        let pushes = match pushes {
            Ok(pushes) => pushes,
            Err(error) => return vec![Err(error); batch.len()],
        };
        for (index, result) in commands.into_iter().chain(pushes) {
            results[index] = result;
        }
        super::handler::deferred_while_paused(&mut results, &self.pause);
        tracing::debug!(marketplace = %self.marketplace.code, messages = batch.len(), rows, order_commands,
            deferred = results.iter().filter(|r| matches!(r, Err(HandlerError::Deferred(_)))).count(),
            elapsed_ms = started.elapsed().as_millis() as u64, "batch worked");
        results
    }
}

/// A batch sorted by what it asks for.
struct Sorted {
    /// Accepts of order lines: sent together, before the other commands
    /// (Refurbed takes 50 in one call).
    accepts: Vec<usize>,
    /// The other order commands, one list per order in arrival order (an
    /// order's commands go one after the other; orders go side by side).
    commands: Vec<Vec<usize>>,
    /// `stock.changed` messages by stock row.
    groups: BTreeMap<i64, Group>,
}

/// After one call of a kind gave up transiently (the marketplace is down or
/// throttling), the calls of that kind not yet started are not tried: their
/// messages go to the retry queue with the same error.
#[derive(Default)]
struct Outage(Mutex<Option<HandlerError>>);

impl Outage {
    fn current(&self) -> Option<HandlerError> {
        self.0.lock().expect("poisoned").clone()
    }

    fn note(&self, result: &Result<(), HandlerError>) {
        if let Err(error @ HandlerError::Transient(_)) = result {
            self.0
                .lock()
                .expect("poisoned")
                .get_or_insert(error.clone());
        }
    }
}

/// The order id a command is about (every command payload names one).
#[derive(serde::Deserialize)]
struct CommandOrder {
    order_id: String,
}

/// Sorts a batch of `code`'s queue; a message that cannot be worked gets its
/// permanent error in `results`.
fn sort(batch: &[Incoming], code: &str, results: &mut [Result<(), HandlerError>]) -> Sorted {
    let mut groups: BTreeMap<i64, Group> = BTreeMap::new();
    let mut accepts = Vec::new();
    let mut commands: Vec<Vec<usize>> = Vec::new();
    let mut by_order: HashMap<String, usize> = HashMap::new();
    for (index, incoming) in batch.iter().enumerate() {
        let envelope = &incoming.envelope;
        if envelope.marketplace != code {
            results[index] = Err(HandlerError::Permanent(format!(
                "a {} message reached the publisher of {}",
                envelope.marketplace, code
            )));
            continue;
        }
        if envelope.kind == ACCEPT_ORDERLINE {
            accepts.push(index);
            continue;
        }
        if envelope.kind != STOCK_CHANGED {
            // A payload without an order id stands alone; `command` names its fault.
            match envelope.payload::<CommandOrder>() {
                Ok(CommandOrder { order_id }) => match by_order.get(&order_id) {
                    Some(&list) => commands[list].push(index),
                    None => {
                        by_order.insert(order_id, commands.len());
                        commands.push(vec![index]);
                    }
                },
                Err(_) => commands.push(vec![index]),
            }
            continue;
        }
        match envelope.payload::<StockChanged>() {
            Ok(change) => {
                let reconcile = change.change_type == RECONCILIATION;
                let group = groups.entry(change.stock_id).or_insert(Group {
                    carrier: index,
                    reconcile,
                    origin: None,
                });
                group.note_origin(change.origin, code);
                // A reconciliation carries the outcome, so a retry reads the marketplace again.
                if reconcile || !group.reconcile {
                    group.carrier = index;
                }
                group.reconcile |= reconcile;
            }
            Err(error) => {
                results[index] = Err(HandlerError::Permanent(format!(
                    "malformed stock.changed payload: {error}"
                )))
            }
        }
    }
    Sorted {
        accepts,
        commands,
        groups,
    }
}

impl PublisherHandler {
    /// The accepts, then every order's other commands, up to
    /// `calls_in_flight` orders at once.
    async fn run_commands(
        &self,
        batch: &[Incoming],
        accepts: Vec<usize>,
        orders: Vec<Vec<usize>>,
    ) -> Vec<(usize, Result<(), HandlerError>)> {
        let outage = Outage::default();
        let outage = &outage;
        let mut done = Vec::new();
        if !accepts.is_empty() {
            let envelopes: Vec<_> = accepts.iter().map(|&i| &batch[i].envelope).collect();
            for (index, result) in accepts.into_iter().zip(self.accept(&envelopes).await) {
                outage.note(&result);
                done.push((index, result));
            }
        }
        let others: Vec<_> = futures::stream::iter(orders)
            .map(|commands| async move {
                let mut done = Vec::with_capacity(commands.len());
                for index in commands {
                    let result = match outage.current() {
                        Some(error) => Err(error),
                        None => self.command(&batch[index].envelope).await,
                    };
                    outage.note(&result);
                    done.push((index, result));
                }
                done
            })
            .buffer_unordered(self.calls_in_flight)
            .flat_map(futures::stream::iter)
            .collect()
            .await;
        done.extend(others);
        done
    }

    /// Every row's push, decreases started first, up to `calls_in_flight`
    /// at once; the outcome of each carrier (each row commits its own).
    async fn run_pushes(
        &self,
        batch: &[Incoming],
        groups: BTreeMap<i64, Group>,
    ) -> Result<Vec<(usize, Result<(), HandlerError>)>, HandlerError> {
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = groups.keys().copied().collect();
        // Taken before the rows are read: a row another batch works
        // meanwhile is read again under its lock (row_lock.rs).
        let versions: HashMap<i64, u64> = ids
            .iter()
            .map(|&id| (id, self.row_locks.version(id)))
            .collect();
        let rows = self.load_rows(&ids).await?;
        let mut done = Vec::new();
        // Decreases first: they are what keeps the marketplace from
        // overselling; of them, a pool's sale on another marketplace first
        // (that unit is sold, and every other marketplace still shows it).
        let mut ordered: Vec<(i64, Group)> = Vec::with_capacity(groups.len());
        for (stock_id, group) in groups {
            match rows.get(&stock_id) {
                Some(_) => ordered.push((stock_id, group)),
                None => done.push((
                    group.carrier,
                    Err(HandlerError::Permanent(format!(
                        "no stock row {stock_id} on {}",
                        self.marketplace.code
                    ))),
                )),
            }
        }
        ordered.sort_by_key(|(stock_id, group)| {
            lane(rows[stock_id].is_decrease(), group.origin.is_some())
        });
        let outage = Outage::default();
        let (outage, rows, versions) = (&outage, &rows, &versions);
        let pushes: Vec<_> = futures::stream::iter(ordered)
            .map(|(stock_id, group)| async move {
                let result = match outage.current() {
                    Some(error) => Err(error),
                    None => {
                        let reference = batch[group.carrier].envelope.id.to_string();
                        let view = (&rows[&stock_id], versions[&stock_id]);
                        self.sync_row(stock_id, view, &group, &reference).await
                    }
                };
                outage.note(&result);
                (group.carrier, result)
            })
            .buffer_unordered(self.calls_in_flight)
            .collect()
            .await;
        done.extend(pushes);
        Ok(done)
    }
}

/// The order a batch's pushes start in (lowest first): decreases caused by
/// a sale elsewhere in the row's pool, other decreases, then the rest.
fn lane(decrease: bool, pool_sale: bool) -> u8 {
    match (decrease, pool_sale) {
        (true, true) => 0,
        (true, false) => 1,
        (false, _) => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::Envelope;
    use crate::domain::OrderStatus;
    use crate::events::{AcceptOrderline, UPDATE_ORDER_STATUS, UpdateOrderStatus};

    fn incoming(kind: &str, marketplace: &str, payload: serde_json::Value) -> Incoming {
        Incoming {
            envelope: Envelope::new(kind, marketplace, &payload),
            traceparent: None,
        }
    }

    fn accept(order: &str) -> Incoming {
        let accept = AcceptOrderline {
            order_id: order.into(),
            item_id: "1".into(),
            sku: "SKU".into(),
        };
        incoming(
            ACCEPT_ORDERLINE,
            "bm",
            serde_json::to_value(accept).unwrap(),
        )
    }

    fn ship(order: &str) -> Incoming {
        let update = UpdateOrderStatus {
            order_id: order.into(),
            status: OrderStatus::Shipped,
            items: Vec::new(),
            tracking: None,
        };
        incoming(
            UPDATE_ORDER_STATUS,
            "bm",
            serde_json::to_value(update).unwrap(),
        )
    }

    fn changed(stock_id: i64, change_type: &str) -> Incoming {
        let change = StockChanged {
            stock_id,
            variation_id: 1,
            sku: "SKU".into(),
            listed: 1,
            locked: 0,
            available: 1,
            change_type: change_type.into(),
            origin: None,
        };
        incoming(STOCK_CHANGED, "bm", serde_json::to_value(change).unwrap())
    }

    #[test]
    fn a_pools_sale_elsewhere_is_pushed_before_other_decreases_and_increases() {
        let mut pushes = [
            ("increase", lane(false, false)),
            ("pooled increase", lane(false, true)),
            ("decrease", lane(true, false)),
            ("pooled sale", lane(true, true)),
        ];
        pushes.sort_by_key(|(_, lane)| *lane);
        let order: Vec<&str> = pushes.iter().map(|(name, _)| *name).collect();
        assert_eq!(
            order,
            ["pooled sale", "decrease", "increase", "pooled increase"]
        );
    }

    #[test]
    fn a_batch_is_sorted_into_accepts_orders_and_rows() {
        let batch = vec![
            ship("A"),                                                  // 0
            accept("B"),                                                // 1
            changed(7, "lock"),                                         // 2
            ship("B"),                                                  // 3
            changed(7, RECONCILIATION),                                 // 4
            changed(7, "unlock"),                                       // 5
            ship("A"),                                                  // 6
            changed(9, "lock"),                                         // 7
            incoming(UPDATE_ORDER_STATUS, "bm", serde_json::json!({})), // 8
            changed(3, "lock"),                                         // 9
        ];
        let mut results = vec![Ok(()); batch.len()];
        let sorted = sort(&batch, "bm", &mut results);
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(sorted.accepts, vec![1]);
        // One list per order, in arrival order; a payload without an order alone.
        assert_eq!(sorted.commands, vec![vec![0, 6], vec![3], vec![8]]);
        let rows: Vec<_> = sorted
            .groups
            .iter()
            .map(|(id, g)| (*id, g.carrier, g.reconcile))
            .collect();
        // The reconciliation carries row 7's outcome, so a retry reads the marketplace again.
        assert_eq!(rows, vec![(3, 9, false), (7, 4, true), (9, 7, false)]);
    }

    #[test]
    fn another_marketplace_s_message_or_a_malformed_change_fails_alone() {
        let batch = vec![
            incoming(STOCK_CHANGED, "bm", serde_json::json!({"stock_id": "x"})),
            changed(1, "lock"),
            incoming(ACCEPT_ORDERLINE, "rf", serde_json::json!({})),
        ];
        let mut results = vec![Ok(()); batch.len()];
        let sorted = sort(&batch, "bm", &mut results);
        assert!(
            matches!(&results[0], Err(HandlerError::Permanent(m)) if m.contains("malformed stock.changed"))
        );
        assert!(results[1].is_ok());
        assert!(
            matches!(&results[2], Err(HandlerError::Permanent(m)) if m.contains("a rf message reached the publisher of bm"))
        );
        assert!(sorted.accepts.is_empty() && sorted.commands.is_empty());
        assert_eq!(sorted.groups.keys().copied().collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn after_a_transient_failure_the_calls_not_yet_started_are_not_tried() {
        let outage = Outage::default();
        outage.note(&Err(HandlerError::Permanent("404".into())));
        assert_eq!(
            outage.current(),
            None,
            "a permanent failure is that message's alone"
        );
        outage.note(&Err(HandlerError::Transient("503".into())));
        outage.note(&Err(HandlerError::Transient("timeout".into())));
        assert_eq!(
            outage.current(),
            Some(HandlerError::Transient("503".into()))
        );
    }
}
