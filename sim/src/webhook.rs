//! WooCommerce webhook delivery: `order.created` / `order.updated` POSTed to
//! a configured URL, signed and named (User-Agent) as WooCommerce sends them, one at a time in
//! order (a queue and one worker), disabled after more than 5 failures in a row.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;

/// WooCommerce disables a webhook after more than this many failures in a row.
const MAX_FAILURES: u32 = 5;
/// The versions the simulated store names in its deliveries' User-Agent,
/// `WooCommerce/<WC_VERSION> Hookshot (WordPress/<wp_version>)` as
/// class-wc-webhook.php sends it.
const WOOCOMMERCE_VERSION: &str = "9.8.5";
const WORDPRESS_VERSION: &str = "6.8.1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Topic {
    Created,
    Updated,
}

impl Topic {
    fn event(self) -> &'static str {
        match self {
            Topic::Created => "created",
            Topic::Updated => "updated",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    pub url: String,
    pub secret: String,
    /// Default: both `order.created` and `order.updated`.
    #[serde(default)]
    pub topics: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Webhook {
    pub id: u64,
    pub url: String,
    #[serde(skip)]
    secret: String,
    pub topics: Vec<String>,
    /// "active", or "disabled" after too many failures.
    pub status: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub id: u64,
    pub webhook_id: u64,
    pub topic: String,
    pub resource_id: Option<u64>,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Default)]
struct Registry {
    webhook: Option<Webhook>,
    deliveries: Vec<Delivery>,
    failures: u32,
    next_id: u64,
}

struct Job {
    webhook_id: u64,
    url: String,
    topic: String,
    resource_id: Option<u64>,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
}

pub(crate) struct Webhooks {
    registry: Arc<Mutex<Registry>>,
    queue: mpsc::UnboundedSender<Job>,
}

impl Webhooks {
    /// Starts the delivery worker; it ends when this is dropped.
    pub fn new() -> Self {
        let registry = Arc::new(Mutex::new(Registry::default()));
        let (queue, jobs) = mpsc::unbounded_channel();
        tokio::spawn(deliver(registry.clone(), jobs));
        Webhooks { registry, queue }
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        lock(&self.registry)
    }

    /// Registers the webhook (replacing any) and sends WooCommerce's ping.
    pub fn configure(&self, request: WebhookRequest) -> Webhook {
        let mut registry = self.registry();
        registry.next_id += 1;
        let topics = if request.topics.is_empty() {
            vec!["order.created".to_owned(), "order.updated".to_owned()]
        } else {
            request.topics
        };
        let webhook = Webhook {
            id: registry.next_id,
            url: request.url,
            secret: request.secret,
            topics,
            status: "active".into(),
        };
        registry.webhook = Some(webhook.clone());
        registry.failures = 0;
        // The ping is a form body, unsigned.
        let _ = self.queue.send(Job {
            webhook_id: webhook.id,
            url: webhook.url.clone(),
            topic: "ping".into(),
            resource_id: None,
            body: format!("webhook_id={}", webhook.id).into_bytes(),
            headers: vec![("content-type", "application/x-www-form-urlencoded".into())],
        });
        webhook
    }

    pub fn clear(&self) {
        *self.registry() = Registry::default();
    }

    pub fn snapshot(&self) -> (Option<Webhook>, Vec<Delivery>) {
        let registry = self.registry();
        (registry.webhook.clone(), registry.deliveries.clone())
    }

    /// Queues an order event for the active webhook, if it wants the topic.
    pub fn order_event(&self, base_url: &str, topic: Topic, order_id: u64, order: &Value) {
        let registry = self.registry();
        let Some(webhook) = registry.webhook.as_ref() else {
            return;
        };
        let topic_name = format!("order.{}", topic.event());
        if webhook.status != "active" || !webhook.topics.contains(&topic_name) {
            return;
        }
        let body = serde_json::to_vec(order).unwrap_or_default();
        let headers = vec![
            ("content-type", "application/json".to_owned()),
            ("x-wc-webhook-source", format!("{base_url}/woocommerce/")),
            ("x-wc-webhook-topic", topic_name.clone()),
            ("x-wc-webhook-resource", "order".to_owned()),
            ("x-wc-webhook-event", topic.event().to_owned()),
            ("x-wc-webhook-id", webhook.id.to_string()),
            ("x-wc-webhook-signature", sign(&body, &webhook.secret)),
        ];
        let _ = self.queue.send(Job {
            webhook_id: webhook.id,
            url: webhook.url.clone(),
            topic: topic_name,
            resource_id: Some(order_id),
            body,
            headers,
        });
    }
}

/// `base64(HMAC-SHA256(raw body, secret))`, as WooCommerce computes it.
pub fn sign(body: &[u8], secret: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    BASE64.encode(mac.finalize().into_bytes())
}

fn lock(registry: &Mutex<Registry>) -> MutexGuard<'_, Registry> {
    registry
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn deliver(registry: Arc<Mutex<Registry>>, mut jobs: mpsc::UnboundedReceiver<Job>) {
    // WooCommerce gives a receiver a few seconds; a slow one counts as a failure.
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .user_agent(format!(
            "WooCommerce/{WOOCOMMERCE_VERSION} Hookshot (WordPress/{WORDPRESS_VERSION})"
        ))
        .build()
        .unwrap_or_default();
    while let Some(job) = jobs.recv().await {
        let delivery_id = {
            let mut registry = lock(&registry);
            registry.next_id += 1;
            registry.next_id
        };
        let mut request = client
            .post(&job.url)
            .header("x-wc-webhook-delivery-id", delivery_id.to_string())
            .body(job.body);
        for (name, value) in &job.headers {
            request = request.header(*name, value);
        }
        let (status, error) = match request.send().await {
            Ok(response) => (Some(response.status().as_u16()), None),
            Err(error) => (None, Some(error.without_url().to_string())),
        };
        let delivered = status.is_some_and(|s| (200..300).contains(&s));
        let mut registry = lock(&registry);
        registry.failures = if delivered { 0 } else { registry.failures + 1 };
        if registry.failures > MAX_FAILURES
            && let Some(webhook) = registry.webhook.as_mut().filter(|w| w.id == job.webhook_id)
        {
            webhook.status = "disabled".into();
        }
        registry.deliveries.push(Delivery {
            id: delivery_id,
            webhook_id: job.webhook_id,
            topic: job.topic,
            resource_id: job.resource_id,
            status,
            error,
            at: Utc::now(),
        });
    }
}
