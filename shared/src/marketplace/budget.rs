//! The fleet's request budget: one token bucket per marketplace and endpoint
//! class in PostgreSQL (`request_budgets`, migration 0031), shared by every
//! poller, publisher and CLI process, so the sum of their calls stays under
//! the marketplace's published limit however many run.
//!
//! A process leases a few permits at a time with one statement
//! (`lease_request_permits`) and spends them locally until they run out or
//! the lease expires (at most a tenth of the class's window, 1 s at most):
//! a killed process loses at most its lease. A 429 blocks the class for its
//! Retry-After for everyone. Low-priority calls (stock increases,
//! reconciliation reads, re-reads of open orders, modified, care and
//! incomplete syncs)
//! only take permits while half the bucket is left for the others.

use sqlx::{PgPool, Row};
use std::cell::Cell;
use std::future::Future;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Which of a marketplace's limits a call counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndpointClass {
    /// Order reads and order commands (Back Market's general limit).
    Orders,
    /// Catalogue reads and quantity writes (Back Market's listing limit).
    Listings,
}

impl EndpointClass {
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointClass::Orders => "orders",
            EndpointClass::Listings => "listings",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Decreases of a shown quantity, order commands, new-orders polls.
    High,
    /// Increases, reconciliation, re-reads, modified, care and incomplete syncs.
    Low,
}

impl Priority {
    /// The share of the bucket this priority must leave to the others.
    fn reserve(self) -> f64 {
        match self {
            Priority::High => 0.0,
            Priority::Low => 0.5,
        }
    }
}

tokio::task_local! {
    static PRIORITY: Priority;
    static PREPAID: Cell<Option<EndpointClass>>;
}

/// Runs `work` with its marketplace calls at `priority` (High when unset).
pub async fn with_priority<F: Future>(priority: Priority, work: F) -> F::Output {
    PRIORITY.scope(priority, work).await
}

/// Runs `work` with one permit of `class` already taken by the caller
/// ([`Budget::acquire`]): its first call of that class takes no other. For a
/// caller that must hold the permit before it decides what to send (the
/// publisher computes a quantity once it may send it, not before the wait).
pub async fn prepaid<F: Future>(class: EndpointClass, work: F) -> F::Output {
    PREPAID.scope(Cell::new(Some(class)), work).await
}

/// Whether the current task holds a prepaid permit of `class` (and spends it).
fn take_prepaid(class: EndpointClass) -> bool {
    PREPAID
        .try_with(|prepaid| {
            let held = prepaid.get() == Some(class);
            if held {
                prepaid.set(None);
            }
            held
        })
        .unwrap_or(false)
}

fn current_priority() -> Priority {
    PRIORITY.try_with(|p| *p).unwrap_or(Priority::High)
}

/// The longest a lease lives; shorter for short windows (see the migration).
const MAX_LEASE: Duration = Duration::from_secs(1);
/// How long a class without a budget row is taken as unlimited before asking again.
const UNLIMITED_RECHECK: Duration = Duration::from_secs(30);
/// Longest pause between two lease attempts (a 429 block is waited in full).
const MAX_PAUSE: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Lease {
    permits: u32,
    expires: Option<Instant>,
    /// No budget row for this class, until this instant.
    unlimited_until: Option<Instant>,
}

/// One process's view of one marketplace's budgets.
pub struct Budget {
    pool: PgPool,
    marketplace_id: i32,
    code: String,
    /// `poller`, `publisher`, `cli`, ... for the requests metric.
    caller: &'static str,
    orders: Mutex<Lease>,
    listings: Mutex<Lease>,
}

impl Budget {
    pub fn new(pool: PgPool, marketplace_id: i32, code: &str, caller: &'static str) -> Self {
        Self {
            pool,
            marketplace_id,
            code: code.to_owned(),
            caller,
            orders: Mutex::default(),
            listings: Mutex::default(),
        }
    }

    /// Who spends this budget: `poller`, `publisher`, `cli`.
    pub fn caller(&self) -> &'static str {
        self.caller
    }

    fn lease(&self, class: EndpointClass) -> &Mutex<Lease> {
        match class {
            EndpointClass::Orders => &self.orders,
            EndpointClass::Listings => &self.listings,
        }
    }

    /// Waits for one permit of `class` at the current task's priority. The
    /// local lock is never held while waiting, so a low-priority call that
    /// waits for the reserve does not hold up this process's other calls.
    pub async fn acquire(&self, class: EndpointClass) {
        if take_prepaid(class) {
            return;
        }
        let started = Instant::now();
        let priority = current_priority();
        loop {
            let pause = {
                let mut lease = self.lease(class).lock().await;
                let now = Instant::now();
                if lease.unlimited_until.is_some_and(|until| until > now) {
                    break;
                }
                if lease.permits > 0 && lease.expires.is_some_and(|at| at > now) {
                    lease.permits -= 1;
                    break;
                }
                match self.lease_more(class, priority).await {
                    Ok(Granted::Unlimited) => {
                        lease.unlimited_until = Some(now + UNLIMITED_RECHECK);
                        break;
                    }
                    Ok(Granted::Permits { count, ttl, .. }) if count > 0 => {
                        lease.permits = count - 1;
                        lease.expires = Some(now + ttl);
                        break;
                    }
                    Ok(Granted::Permits { pause, .. }) => pause,
                    Err(error) => {
                        tracing::warn!(marketplace = %self.code, class = class.as_str(), %error,
                            "cannot lease request permits; retrying in 1 s");
                        MAX_PAUSE
                    }
                }
            };
            tokio::time::sleep(pause).await;
        }
        metrics::counter!("stockfleet_marketplace_requests_total", "marketplace" => self.code.clone(),
            "class" => class.as_str(), "caller" => self.caller)
        .increment(1);
        let waited = started.elapsed();
        if !waited.is_zero() {
            metrics::histogram!("stockfleet_rate_limit_wait_seconds",
                "marketplace" => self.code.clone(), "paces" => class.as_str())
            .record(waited.as_secs_f64());
        }
    }

    async fn lease_more(&self, class: EndpointClass, priority: Priority) -> sqlx::Result<Granted> {
        // Ask for about half a second's worth: enough to save round trips,
        // little enough not to starve the other processes.
        let row = sqlx::query(
            "SELECT granted, tokens, capacity, refill_per_second, window_seconds, blocked_seconds
             FROM lease_request_permits($1, $2, GREATEST(1, (SELECT floor(0.75 * requests / window_seconds / 2)::int
                 FROM request_budgets WHERE marketplace_id = $1 AND class = $2)), $3)",
        )
        .bind(self.marketplace_id)
        .bind(class.as_str())
        .bind(priority.reserve())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(Granted::Unlimited);
        };
        let granted: i32 = row.get("granted");
        let window = Duration::from_secs(row.get::<i32, _>("window_seconds").max(1) as u64);
        let blocked = row.get::<f64, _>("blocked_seconds");
        // Time until the bucket holds one permit above this priority's reserve
        // (whole permits, as lease_request_permits counts it).
        let reserved = (priority.reserve() * row.get::<f64, _>("capacity")).floor();
        let missing = reserved + 1.0 - row.get::<f64, _>("tokens");
        let refill = row
            .get::<f64, _>("refill_per_second")
            .max(f64::MIN_POSITIVE);
        let pause = if blocked > 0.0 {
            Duration::from_secs_f64(blocked)
        } else {
            Duration::from_secs_f64((missing / refill).clamp(0.005, MAX_PAUSE.as_secs_f64()))
        };
        Ok(Granted::Permits {
            count: granted.max(0) as u32,
            ttl: (window / 10).min(MAX_LEASE),
            pause,
        })
    }

    /// A 429: nobody in the fleet leases permits of `class` for `retry_after`,
    /// and this process drops what it holds.
    pub async fn rate_limited(&self, class: EndpointClass, retry_after: Duration) {
        self.lease(class).lock().await.permits = 0;
        let blocked = sqlx::query(
            "UPDATE request_budgets SET tokens = LEAST(tokens, 0),
                    blocked_until = GREATEST(blocked_until, clock_timestamp() + make_interval(secs => $3))
             WHERE marketplace_id = $1 AND class = $2",
        )
        .bind(self.marketplace_id)
        .bind(class.as_str())
        .bind(retry_after.as_secs_f64())
        .execute(&self.pool)
        .await;
        if let Err(error) = blocked {
            tracing::warn!(marketplace = %self.code, %error, "cannot record a 429 in the request budget");
        }
        metrics::counter!("stockfleet_rate_limited_total", "marketplace" => self.code.clone())
            .increment(1);
    }
}

enum Granted {
    Unlimited,
    Permits {
        count: u32,
        ttl: Duration,
        /// How long to wait before asking again when nothing was granted.
        pause: Duration,
    },
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget")
            .field("code", &self.code)
            .field("caller", &self.caller)
            .finish()
    }
}
