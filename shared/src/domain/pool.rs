//! Shared stock pools: one physical count of a variation offered on every
//! marketplace it is listed on (docs/stock-rules.md, Pools).
//!
//! A pool's levels are a [`StockLevels`] whose `listed` is the units on hand
//! and whose `locked` is every marketplace's active locks on it, so the lock,
//! consume and release rules of [`crate::domain::ledger::apply`] are the
//! pool's rules too: an order on any marketplace moves the one count. What
//! stays per marketplace is what it is shown: its buffer rule applied to the
//! pool's available, after the "last units on one marketplace only" hold.

use super::buffer::BufferRule;
use super::ledger::StockLevels;

/// Whether a variation's marketplace rows share one count or each hold their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockMode {
    /// Each (variation, marketplace) row has its own listed stock.
    Allocated,
    /// One count on hand for every marketplace row of the variation.
    Pooled,
}

impl StockMode {
    pub fn as_str(self) -> &'static str {
        match self {
            StockMode::Allocated => "allocated",
            StockMode::Pooled => "pooled",
        }
    }
}

/// "Show the last `units` units on one marketplace only": while the pool's
/// available is at or below `units`, only `holder` is offered them, so two
/// marketplaces cannot both sell the last unit. `units = 0` is no hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LastUnits {
    pub units: u32,
    /// The marketplace that keeps the last units (its id).
    pub holder: Option<i32>,
}

impl LastUnits {
    /// The pool's units offered to `marketplace`: everything for the holder
    /// (or when there is no hold), the units above the held ones for the others.
    pub fn offered(&self, available: i32, marketplace: i32) -> i32 {
        let available = available.max(0);
        match self.holder {
            Some(holder) if self.units > 0 && holder != marketplace => {
                (available - i32::try_from(self.units).unwrap_or(i32::MAX)).max(0)
            }
            _ => available,
        }
    }
}

/// The quantity `marketplace` is shown of a pool at `levels`.
pub fn shown(levels: StockLevels, last: LastUnits, marketplace: i32, rule: &BufferRule) -> u32 {
    rule.buffered(last.offered(levels.available(), marketplace))
}

/// Units locked beyond what is on hand: orders the pool could not cover.
pub fn oversold(levels: StockLevels) -> i32 {
    (levels.locked - levels.listed).max(0)
}

/// One allocated row as it enters a pool: its listed and its active locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    pub listed: i32,
    pub locked: i32,
}

/// Pooling: the pool holds every row's units and every row's locks.
pub fn pool_of(shares: &[Share]) -> StockLevels {
    shares.iter().fold(StockLevels::default(), |sum, share| {
        StockLevels::new(
            sum.listed.saturating_add(share.listed),
            sum.locked.saturating_add(share.locked),
        )
    })
}

/// Unpooling: each row gets back its own locks first (so no row starts
/// oversold while the pool covers it), then the free units go to the rows in
/// the order given, evenly, the remainder to the first rows. The listed
/// units always add up to what the pool had on hand; when the pool is
/// oversold the rows' locks are covered in order and the last ones stay short.
pub fn split(levels: StockLevels, locked_by_row: &[i32]) -> Vec<i32> {
    let mut left = levels.listed.max(0);
    let mut listed: Vec<i32> = locked_by_row
        .iter()
        .map(|&locked| {
            let covered = locked.max(0).min(left);
            left -= covered;
            covered
        })
        .collect();
    if listed.is_empty() {
        return listed;
    }
    let rows = listed.len() as i32;
    let (each, extra) = (left / rows, left % rows);
    for (index, units) in listed.iter_mut().enumerate() {
        *units += each + i32::from((index as i32) < extra);
    }
    listed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Rounding;

    const DOWN: BufferRule = BufferRule {
        basis_points: 1000,
        min_units: 0,
        max_shown: None,
        rounding: Rounding::Down,
    };

    #[test]
    fn every_marketplace_is_shown_its_rule_over_the_pool_available() {
        let pool = StockLevels::new(3, 2);
        let capped = BufferRule {
            max_shown: Some(0),
            ..DOWN
        };
        assert_eq!(shown(pool, LastUnits::default(), 1, &DOWN), 1);
        assert_eq!(
            shown(pool, LastUnits::default(), 2, &BufferRule::default()),
            0
        );
        assert_eq!(shown(pool, LastUnits::default(), 3, &capped), 0);
    }

    #[test]
    fn the_last_units_are_offered_to_the_holder_only() {
        let last = LastUnits {
            units: 1,
            holder: Some(1),
        };
        assert_eq!(last.offered(1, 1), 1);
        assert_eq!(last.offered(1, 2), 0);
        assert_eq!(last.offered(3, 2), 2);
        assert_eq!(last.offered(3, 1), 3);
        assert_eq!(last.offered(-2, 1), 0);
    }

    #[test]
    fn no_hold_without_units_or_holder() {
        let none = LastUnits {
            units: 0,
            holder: Some(1),
        };
        assert_eq!(none.offered(1, 2), 1);
        let nobody = LastUnits {
            units: 2,
            holder: None,
        };
        assert_eq!(nobody.offered(1, 2), 1);
    }

    #[test]
    fn oversold_is_the_locks_beyond_on_hand() {
        assert_eq!(oversold(StockLevels::new(1, 2)), 1);
        assert_eq!(oversold(StockLevels::new(3, 2)), 0);
    }

    #[test]
    fn pooling_sums_units_and_locks() {
        let shares = [
            Share {
                listed: 2,
                locked: 1,
            },
            Share {
                listed: 1,
                locked: 0,
            },
        ];
        assert_eq!(pool_of(&shares), StockLevels::new(3, 1));
        assert_eq!(pool_of(&[]), StockLevels::default());
    }

    #[test]
    fn unpooling_covers_each_rows_locks_then_spreads_the_rest() {
        assert_eq!(split(StockLevels::new(5, 1), &[0, 1, 0]), vec![2, 2, 1]);
        assert_eq!(split(StockLevels::new(3, 3), &[2, 1]), vec![2, 1]);
        // Oversold: the first rows are covered, the last stays short.
        assert_eq!(split(StockLevels::new(1, 2), &[1, 1]), vec![1, 0]);
        assert_eq!(split(StockLevels::new(4, 0), &[]), Vec::<i32>::new());
    }
}

#[cfg(test)]
mod properties {
    //! H3 for pools: order events of several marketplaces on one pool,
    //! shuffled and duplicated, end where ordered delivery ends, and the
    //! pool's locked is always its active locks across marketplaces.
    use super::*;
    use crate::domain::ledger::{ItemOp, Lock, LockState, LockWrite, apply};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// (marketplace, item) → its lock, and the pool's levels.
    #[derive(Debug, Default, PartialEq)]
    struct Pool {
        levels: StockLevels,
        locks: BTreeMap<(i32, usize), Lock>,
        replayed: (i32, i32),
    }

    impl Pool {
        fn deliver(&mut self, (marketplace, item, op, quantity): (i32, usize, ItemOp, i32)) {
            let key = (marketplace, item);
            let t = apply(self.levels, self.locks.get(&key).copied(), op, quantity);
            match t.lock {
                LockWrite::Unchanged => {}
                LockWrite::Insert(lock) => {
                    self.locks.insert(key, lock);
                }
                LockWrite::Finish(state) => {
                    self.locks
                        .get_mut(&key)
                        .expect("finish without a lock")
                        .state = state;
                }
            }
            if let Some(change) = t.change {
                self.replayed.0 += change.after.listed - change.before.listed;
                self.replayed.1 += change.after.locked - change.before.locked;
            }
            self.levels = t.levels;
            let active: i32 = self
                .locks
                .values()
                .filter(|lock| lock.state == LockState::Locked)
                .map(|lock| lock.quantity)
                .sum();
            assert_eq!(
                self.levels.locked, active,
                "locked of a pool = its active locks"
            );
        }
    }

    /// Per (marketplace, item): created, then shipped, cancelled or nothing.
    fn lifecycles() -> impl Strategy<Value = Vec<(i32, usize, ItemOp, i32)>> {
        prop::collection::vec((1i32..4, 1i32..3, 0u8..3), 1..9).prop_map(|items| {
            items
                .into_iter()
                .enumerate()
                .flat_map(|(item, (marketplace, quantity, end))| {
                    let mut events = vec![(marketplace, item, ItemOp::Lock, quantity)];
                    match end {
                        0 => events.push((marketplace, item, ItemOp::Consume, quantity)),
                        1 => events.push((marketplace, item, ItemOp::Release, quantity)),
                        _ => {}
                    }
                    events
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn unpooling_keeps_every_unit_and_covers_every_lock_it_can(
            listed in 0i32..50,
            locks in prop::collection::vec(0i32..6, 1..5),
        ) {
            let locked: i32 = locks.iter().sum();
            let rows = split(StockLevels::new(listed, locked), &locks);
            prop_assert_eq!(rows.iter().sum::<i32>(), listed);
            if listed >= locked {
                for (units, lock) in rows.iter().zip(&locks) {
                    prop_assert!(units >= lock);
                }
            }
            // Pooling the split rows again gives the pool back.
            let shares: Vec<Share> = rows
                .iter()
                .zip(&locks)
                .map(|(&listed, &locked)| Share { listed, locked })
                .collect();
            prop_assert_eq!(pool_of(&shares), StockLevels::new(listed, locked));
        }

        #[test]
        fn a_hold_never_offers_more_and_only_the_holder_sees_the_last_units(
            available in -3i32..20,
            units in 0u32..5,
            marketplace in 1i32..4,
        ) {
            let last = LastUnits { units, holder: Some(1) };
            let offered = last.offered(available, marketplace);
            prop_assert!(offered <= available.max(0));
            if marketplace != 1 && available <= units as i32 {
                prop_assert_eq!(offered, 0);
            }
        }

        #[test]
        fn pooled_events_of_several_marketplaces_shuffled_and_duplicated_end_like_ordered(
            events in lifecycles(),
            on_hand in 0i32..6,
            duplicates in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
            seed in any::<u64>(),
        ) {
            let start = StockLevels::new(on_hand, 0);
            let mut ordered = Pool { levels: start, ..Pool::default() };
            events.iter().copied().for_each(|e| ordered.deliver(e));

            let mut stream = events.clone();
            stream.extend(duplicates.iter().map(|i| events[i.index(events.len())]));
            let mut state = seed;
            for i in (1..stream.len()).rev() {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                stream.swap(i, (state >> 33) as usize % (i + 1));
            }
            let mut shuffled = Pool { levels: start, ..Pool::default() };
            stream.into_iter().for_each(|e| shuffled.deliver(e));

            prop_assert_eq!(shuffled.levels, ordered.levels);
            prop_assert_eq!(&shuffled.locks, &ordered.locks);
            // Replaying the pool's history reproduces it.
            prop_assert_eq!(
                (on_hand + shuffled.replayed.0, shuffled.replayed.1),
                (shuffled.levels.listed, shuffled.levels.locked)
            );
        }
    }
}
