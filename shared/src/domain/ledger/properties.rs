//! Random event streams (duplicated, shuffled) keep the invariants of
//! design §7 and end where one ordered delivery ends.

use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

#[derive(Debug, Default, Clone, PartialEq)]
struct Row {
    levels: StockLevels,
    locks: BTreeMap<usize, Lock>,
    history: Vec<LevelChange>,
}

impl Row {
    fn with_listed(listed: i32) -> Self {
        Row {
            levels: StockLevels::new(listed, 0),
            ..Row::default()
        }
    }

    fn deliver(&mut self, (item, op, quantity): (usize, ItemOp, i32)) {
        let before = self.locks.get(&item).copied();
        let t = apply(self.levels, before, op, quantity);
        match t.lock {
            LockWrite::Unchanged => {}
            LockWrite::Insert(lock) => {
                assert!(before.is_none(), "insert over an existing lock");
                self.locks.insert(item, lock);
            }
            LockWrite::Finish(state) => {
                let lock = self.locks.get_mut(&item).expect("finish without a lock");
                assert_eq!(lock.state, LockState::Locked, "a terminal lock changed");
                lock.state = state;
            }
        }
        if let Some(change) = &t.change {
            assert_eq!(change.before, self.levels);
            assert_eq!(change.after, t.levels);
        }
        self.history.extend(t.change);
        self.levels = t.levels;
        self.check_invariants();
    }

    fn check_invariants(&self) {
        let locked: i32 = self
            .locks
            .values()
            .filter(|lock| lock.state == LockState::Locked)
            .map(|lock| lock.quantity)
            .sum();
        assert_eq!(self.levels.locked, locked, "invariant 1");
        assert!(
            self.levels.listed >= 0 && self.levels.locked >= 0,
            "invariant 2"
        );
        let replayed = self.history.iter().fold((0, 0), |(listed, locked), c| {
            (
                listed + c.after.listed - c.before.listed,
                locked + c.after.locked - c.before.locked,
            )
        });
        let start = self.history.first().map_or(self.levels, |c| c.before);
        assert_eq!(
            (start.listed + replayed.0, start.locked + replayed.1),
            (self.levels.listed, self.levels.locked),
            "invariant 4"
        );
    }
}

/// Per item: created (lock), then shipped (consume), cancelled (release) or nothing.
fn lifecycles() -> impl Strategy<Value = Vec<(usize, ItemOp, i32)>> {
    prop::collection::vec((1i32..5, 0u8..3), 1..8).prop_map(|items| {
        items
            .into_iter()
            .enumerate()
            .flat_map(|(item, (quantity, end))| {
                let mut events = vec![(item, ItemOp::Lock, quantity)];
                match end {
                    0 => events.push((item, ItemOp::Consume, quantity)),
                    1 => events.push((item, ItemOp::Release, quantity)),
                    _ => {}
                }
                events
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn duplicated_and_shuffled_delivery_ends_like_ordered_delivery(
        events in lifecycles(),
        listed in 0i32..30,
        duplicates in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
        seed in any::<u64>(),
    ) {
        let mut ordered = Row::with_listed(listed);
        events.iter().copied().for_each(|e| ordered.deliver(e));

        let mut stream = events.clone();
        stream.extend(duplicates.iter().map(|i| events[i.index(events.len())]));
        // Fisher–Yates with a small LCG: proptest shrinks the seed.
        let mut state = seed;
        for i in (1..stream.len()).rev() {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            stream.swap(i, (state >> 33) as usize % (i + 1));
        }
        let mut shuffled = Row::with_listed(listed);
        stream.into_iter().for_each(|e| shuffled.deliver(e));

        prop_assert_eq!(shuffled.levels, ordered.levels);
        prop_assert_eq!(&shuffled.locks, &ordered.locks);
    }

    #[test]
    fn any_op_sequence_keeps_the_invariants(
        ops in prop::collection::vec((0usize..4, 0u8..3, 1i32..5), 0..40),
        listed in 0i32..20,
    ) {
        let mut row = Row::with_listed(listed);
        for (item, op, quantity) in ops {
            let op = [ItemOp::Lock, ItemOp::Consume, ItemOp::Release][usize::from(op)];
            row.deliver((item, op, quantity));
        }
    }
}
