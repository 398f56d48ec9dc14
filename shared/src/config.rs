//! Configuration shared by every binary: environment variables with sane
//! defaults for one machine running PostgreSQL and RabbitMQ locally.

use std::net::SocketAddr;
use std::time::Duration;

/// Where the database and the broker are, and how the bus is used.
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// PostgreSQL connection URL.
    #[arg(
        long,
        env = "DATABASE_URL",
        // Its password stays off the screen (`--help` shows env values).
        hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:5432/stockfleet"
    )]
    pub database_url: String,
    /// Connections kept in the database pool.
    #[arg(long, env = "DATABASE_POOL_SIZE", default_value_t = 10)]
    pub database_pool_size: u32,
    /// RabbitMQ connection URL.
    #[arg(
        long,
        env = "AMQP_URL",
        hide_env_values = true,
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: String,
    /// Seconds each broker connect attempt and each declaration step may take:
    /// a broker that accepts connections but never answers AMQP is reported
    /// (and retried) instead of hanging the process.
    #[arg(long, env = "AMQP_TIMEOUT_SECONDS", default_value_t = 10)]
    pub amqp_timeout_seconds: u64,
    /// Prefix of every exchange and queue name, so tenants and tests can share a broker.
    #[arg(long, env = "BUS_PREFIX", default_value = "stockfleet")]
    pub bus_prefix: String,
    /// The most units one stock row may list; a correction above it is
    /// refused (a typo, not a count). A value that is not a whole number
    /// from 1 up stops the process at start, naming the variable.
    #[arg(
        long,
        env = "STOCK_LEVEL_MAX",
        default_value_t = crate::domain::input::DEFAULT_MAX_STOCK_LEVEL,
        value_parser = clap::value_parser!(i32).range(1..)
    )]
    pub stock_level_max: i32,
    #[command(flatten)]
    pub consumer: ConsumerSettings,
}

/// How a worker consumes its queue.
#[derive(Debug, Clone, clap::Args)]
pub struct ConsumerSettings {
    /// Unacknowledged deliveries the broker may send each consumer.
    #[arg(long, env = "PREFETCH", default_value_t = 200)]
    pub prefetch: u16,
    /// Deliveries handled in one database transaction at most.
    #[arg(long, env = "BATCH_SIZE", default_value_t = 100)]
    pub batch_size: usize,
    /// Consumers (channels) per worker process.
    #[arg(long, env = "CONSUMERS", default_value_t = 2)]
    pub consumers: usize,
    /// Attempts of a message with transient failures before it is dead-lettered.
    #[arg(long, env = "MAX_ATTEMPTS", default_value_t = 6)]
    pub max_attempts: u32,
    /// Delays of the retry queues, in milliseconds, one per retry (the last repeats).
    #[arg(
        long,
        env = "RETRY_DELAYS_MS",
        value_delimiter = ',',
        default_value = "1000,5000,30000,120000,600000"
    )]
    pub retry_delays_ms: Vec<u64>,
    /// On SIGTERM, how long a batch under way may take to finish; past it
    /// the batch is abandoned unacknowledged (redelivered, handlers are
    /// idempotent) so the process stops within its grace period.
    #[arg(long, env = "SHUTDOWN_GRACE_MS", default_value_t = 10_000)]
    pub shutdown_grace_ms: u64,
    /// Batches a consumer works at once: 1 (in order), except where a worker
    /// sets more for a queue (the publisher's stock queues).
    #[arg(skip = 1usize)]
    pub batches_in_flight: usize,
}

impl Settings {
    /// Makes the settings that rules read process-wide ([`max_stock_level`])
    /// this process's; the first call wins.
    pub fn apply(&self) {
        let _ = MAX_STOCK_LEVEL.set(self.stock_level_max);
    }

    pub fn amqp_timeout(&self) -> Duration {
        Duration::from_secs(self.amqp_timeout_seconds.max(1))
    }
}

static MAX_STOCK_LEVEL: std::sync::OnceLock<i32> = std::sync::OnceLock::new();

/// The most units one stock row may list: the process's
/// [`Settings::stock_level_max`] once [`Settings::apply`] ran, else the default.
pub fn max_stock_level() -> i32 {
    MAX_STOCK_LEVEL
        .get()
        .copied()
        .unwrap_or(crate::domain::input::DEFAULT_MAX_STOCK_LEVEL)
}

impl ConsumerSettings {
    pub fn retry_delays(&self) -> Vec<Duration> {
        self.retry_delays_ms
            .iter()
            .map(|ms| Duration::from_millis(*ms))
            .collect()
    }
}

/// The health, readiness and metrics endpoint of a long-running binary.
#[derive(Debug, Clone, clap::Args)]
pub struct HealthSettings {
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "HEALTH_ADDR")]
    pub health_addr: Option<SocketAddr>,
}

/// Reads `Settings` from the environment alone (for tests and embedding).
impl Default for Settings {
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Only {
            #[command(flatten)]
            settings: Settings,
        }
        <Only as clap::Parser>::parse_from(["stockfleet"]).settings
    }
}
