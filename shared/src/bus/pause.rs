//! A queue's pause as its consumer loop sees it: while the signal holds a
//! reason, the loop does not consume (its prefetched deliveries go back to
//! the queue), so waiting messages spend no attempt and never reach the
//! dead-letter queue. The publisher pauses a marketplace's queues during an
//! outage (`crate::outage`); the consumer counts as ready meanwhile.

use tokio::sync::watch;

/// Paused (with why) or not; a signal from nobody never pauses.
#[derive(Clone, Default)]
pub struct PauseSignal(Option<watch::Receiver<Option<String>>>);

impl PauseSignal {
    pub fn new(receiver: watch::Receiver<Option<String>>) -> Self {
        Self(Some(receiver))
    }

    /// Why the queue is paused now, if it is.
    pub fn reason(&self) -> Option<String> {
        self.0.as_ref().and_then(|r| r.borrow().clone())
    }

    /// Resolves with the reason once paused (at once if paused now).
    pub async fn paused(&self) -> String {
        if let Some(receiver) = &self.0 {
            let mut receiver = receiver.clone();
            if let Ok(reason) = receiver.wait_for(Option::is_some).await {
                return reason.clone().unwrap_or_default();
            }
        }
        // No sender (any more): never paused.
        std::future::pending().await
    }

    /// Resolves once not paused (at once if not paused now).
    pub async fn resumed(&self) {
        if let Some(receiver) = &self.0 {
            let mut receiver = receiver.clone();
            // A sender gone cannot hold the queue.
            let _ = receiver.wait_for(Option::is_none).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn paused_and_resumed_follow_the_sender() {
        let (sender, receiver) = watch::channel(None);
        let signal = PauseSignal::new(receiver);
        assert_eq!(signal.reason(), None);
        signal.resumed().await;
        let waiting = tokio::spawn({
            let signal = signal.clone();
            async move { signal.paused().await }
        });
        sender.send_replace(Some("outage".into()));
        assert_eq!(waiting.await.unwrap(), "outage");
        assert_eq!(signal.reason().as_deref(), Some("outage"));
        let resumed = tokio::spawn({
            let signal = signal.clone();
            async move { signal.resumed().await }
        });
        sender.send_replace(None);
        resumed.await.unwrap();
    }

    #[tokio::test]
    async fn no_signal_never_pauses() {
        let signal = PauseSignal::default();
        assert!(
            tokio::time::timeout(Duration::from_millis(20), signal.paused())
                .await
                .is_err()
        );
        signal.resumed().await;
    }
}
