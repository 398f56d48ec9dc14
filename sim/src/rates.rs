//! Requests per marketplace, endpoint class and caller, with the busiest
//! minute of each: what an audit compares with the marketplace's limits
//! (`GET /control/requests/rates`).

use crate::state::{Limits, Marketplace, RateLimit, RequestRecord};
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rate {
    pub marketplace: Marketplace,
    /// `orders` or `listings`, as the fleet's request budget classes them.
    pub class: &'static str,
    /// `poller`, `publisher`, `cli`, or `unknown` (no caller header).
    pub caller: String,
    pub requests: u64,
    /// Answered 429.
    pub rate_limited: u64,
    /// The most requests in any 60 s.
    pub peak_per_minute: u64,
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
}

/// The class's limit over a minute: Back Market's listings have their own,
/// everything else counts against the general one.
pub fn limit_per_minute(limits: &Limits, class: &str) -> Option<f64> {
    let per_minute =
        |limit: RateLimit| f64::from(limit.requests) * 60_000.0 / limit.window_ms as f64;
    let specific = (class == "listings").then_some(limits.listings).flatten();
    specific.or(limits.general).map(per_minute)
}

/// One row per (marketplace, class, caller) seen in `requests`.
pub fn summarise(requests: &[RequestRecord]) -> Vec<Rate> {
    let mut groups: BTreeMap<(Marketplace, &'static str, String), Vec<&RequestRecord>> =
        BTreeMap::new();
    for record in requests {
        let caller = record.caller.clone().unwrap_or_else(|| "unknown".into());
        groups
            .entry((record.marketplace, record.class, caller))
            .or_default()
            .push(record);
    }
    groups
        .into_iter()
        .map(|((marketplace, class, caller), records)| {
            let mut times: Vec<DateTime<Utc>> = records.iter().map(|r| r.at).collect();
            times.sort();
            Rate {
                marketplace,
                class,
                caller,
                requests: records.len() as u64,
                rate_limited: records.iter().filter(|r| r.status == 429).count() as u64,
                peak_per_minute: peak_in(&times, TimeDelta::seconds(60)),
                first_at: times[0],
                last_at: times[times.len() - 1],
            }
        })
        .collect()
}

/// The most of the sorted `times` inside any window of `length`.
fn peak_in(times: &[DateTime<Utc>], length: TimeDelta) -> u64 {
    let mut start = 0;
    let mut peak = 0;
    for end in 0..times.len() {
        while times[end] - times[start] >= length {
            start += 1;
        }
        peak = peak.max(end - start + 1);
    }
    peak as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(
        mp: Marketplace,
        class: &'static str,
        caller: Option<&str>,
        secs: i64,
    ) -> RequestRecord {
        RequestRecord {
            id: 0,
            marketplace: mp,
            method: "GET".into(),
            path: "/".into(),
            class,
            caller: caller.map(str::to_owned),
            status: 200,
            at: DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap(),
        }
    }

    #[test]
    fn groups_by_marketplace_class_and_caller_with_the_busiest_minute() {
        let bm = Marketplace::BackMarket;
        let mut requests: Vec<RequestRecord> = [0, 10, 59, 61, 62, 200]
            .into_iter()
            .map(|s| record(bm, "listings", Some("publisher"), s))
            .collect();
        requests.push(record(bm, "orders", Some("poller"), 5));
        requests.push(record(bm, "orders", None, 5));
        let rates = summarise(&requests);
        assert_eq!(rates.len(), 3);
        let publisher = rates.iter().find(|r| r.caller == "publisher").unwrap();
        assert_eq!((publisher.requests, publisher.peak_per_minute), (6, 4));
        assert!(
            rates
                .iter()
                .any(|r| r.caller == "unknown" && r.requests == 1)
        );
    }

    #[test]
    fn listings_have_their_own_limit_where_the_marketplace_sets_one() {
        let bm = Marketplace::BackMarket.default_limits();
        assert_eq!(limit_per_minute(&bm, "listings"), Some(120.0));
        assert_eq!(limit_per_minute(&bm, "orders"), Some(1200.0));
        let woo = Marketplace::WooCommerce.default_limits();
        assert_eq!(limit_per_minute(&woo, "orders"), None);
    }
}
