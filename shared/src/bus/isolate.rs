//! Failure isolation for batched handlers.
//!
//! A handler that commits a batch in one transaction cannot tell which
//! message made the transaction fail: it answers [`HandlerError::Batch`] for
//! every message that was in it. Those messages are handled again in halves,
//! and again, until each failure stands alone: only the messages that fail on
//! their own are retried or dead-lettered, each with its own reason, and the
//! good neighbours of a poison message are applied. A `Batch` error of a
//! message handled alone is that message's own (permanent) error.

use super::HandlerError;
use std::collections::VecDeque;
use std::future::Future;

/// Runs `handle` over `batch`, splitting the groups whose shared transaction
/// failed; returns one result per message, in order, never `Batch`.
pub(super) async fn isolate<T, F, Fut>(batch: &[T], handle: F) -> Vec<Result<(), HandlerError>>
where
    T: Clone,
    F: Fn(Vec<T>) -> Fut,
    Fut: Future<Output = Vec<Result<(), HandlerError>>>,
{
    let mut results: Vec<Option<Result<(), HandlerError>>> = vec![None; batch.len()];
    let mut groups: VecDeque<Vec<usize>> = VecDeque::from([(0..batch.len()).collect()]);
    while let Some(group) = groups.pop_front() {
        let messages = group.iter().map(|&i| batch[i].clone()).collect();
        let mut outcomes = handle(messages).await.into_iter();
        let mut together = Vec::new();
        for &index in &group {
            let outcome = outcomes.next().unwrap_or_else(|| {
                Err(HandlerError::Permanent("handler returned no result".into()))
            });
            match outcome {
                Err(HandlerError::Batch(reason)) => together.push((index, reason)),
                other => results[index] = Some(other),
            }
        }
        if let [(alone, reason)] = together.as_slice() {
            // The only message in its transaction: the failure is its own.
            results[*alone] = Some(Err(HandlerError::Permanent(reason.clone())));
        } else if !together.is_empty() {
            let mut first: Vec<usize> = together.into_iter().map(|(index, _)| index).collect();
            let second = first.split_off(first.len() / 2);
            groups.push_back(first);
            groups.push_back(second);
        }
    }
    results
        .into_iter()
        .map(|result| result.expect("every message was settled"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A batched "transaction": fails as a whole when it holds a poison
    /// message; a message that fails validation fails alone.
    async fn transaction(
        messages: Vec<u32>,
        calls: &Mutex<Vec<usize>>,
    ) -> Vec<Result<(), HandlerError>> {
        calls.lock().unwrap().push(messages.len());
        let poisoned = messages.iter().any(|m| [13, 113].contains(m));
        messages
            .iter()
            .map(|m| match m {
                7 => Err(HandlerError::Permanent("invalid quantity".into())),
                _ if poisoned => Err(HandlerError::Batch(format!(
                    "database refused batch with {m}"
                ))),
                _ => Ok(()),
            })
            .collect()
    }

    #[tokio::test]
    async fn only_the_poison_fails_and_its_neighbours_pass() {
        let batch: Vec<u32> = (0..41)
            .map(|i| if i == 30 { 13 } else { 1000 + i })
            .collect();
        let calls = Mutex::new(Vec::new());
        let results = isolate(&batch, |m| transaction(m, &calls)).await;
        for (message, result) in batch.iter().zip(&results) {
            if *message == 13 {
                assert!(
                    matches!(result, Err(HandlerError::Permanent(reason)) if reason.contains("with 13")),
                    "{result:?}"
                );
            } else {
                assert_eq!(result, &Ok(()), "message {message}");
            }
        }
        // Halving: a handful of transactions, not one per message.
        let calls = calls.into_inner().unwrap();
        assert!(calls.len() <= 2 * 7 + 1, "{calls:?}");
    }

    #[tokio::test]
    async fn validation_failures_are_not_handled_again_and_several_poisons_are_found() {
        let batch: Vec<u32> = vec![7, 13, 1, 113, 2, 3];
        let calls = Mutex::new(Vec::new());
        let results = isolate(&batch, |m| transaction(m, &calls)).await;
        assert_eq!(
            results[0],
            Err(HandlerError::Permanent("invalid quantity".into()))
        );
        assert!(matches!(results[1], Err(HandlerError::Permanent(_))));
        assert!(matches!(results[3], Err(HandlerError::Permanent(_))));
        for good in [2, 4, 5] {
            assert_eq!(results[good], Ok(()));
        }
        // The first call held all six; the message that failed validation
        // was not in any later one.
        let calls = calls.into_inner().unwrap();
        assert_eq!(calls[0], 6);
        assert!(calls[1..].iter().all(|&n| n <= 5), "{calls:?}");
    }

    #[tokio::test]
    async fn transient_and_deferred_results_are_kept_as_they_are() {
        let results = isolate(&[1u8, 2], |m: Vec<u8>| async move {
            m.iter()
                .map(|&m| match m {
                    1 => Err(HandlerError::Transient("connection lost".into())),
                    _ => Err(HandlerError::Deferred("wait".into())),
                })
                .collect()
        })
        .await;
        assert_eq!(
            results[0],
            Err(HandlerError::Transient("connection lost".into()))
        );
        assert_eq!(results[1], Err(HandlerError::Deferred("wait".into())));
    }
}
