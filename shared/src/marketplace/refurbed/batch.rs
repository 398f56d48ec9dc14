//! `OrderItemService/BatchUpdateOrderItemsState`: 1 to 50 item updates a
//! call (each an `UpdateOrderItemState` body), answered with one result per
//! update in request order. The contract is silent on a result's shape; like
//! the simulator's `BatchUpdateOffers` (docs/marketplaces.md) it is the item's
//! `{"order_item": …}` or `{"error": {"code": <google.rpc code>, "message"}}`.
//! A failed item becomes the error a single `UpdateOrderItemState` with that
//! code and message would have given.

use super::super::MarketplaceError;
use super::super::http::HttpClient;
use super::super::wire::decode;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

/// The documented maximum of updates in one call.
pub(super) const MAX_UPDATES: usize = 50;
pub(super) const METHOD: &str = "BatchUpdateOrderItemsState";

/// google.rpc code names, by number (a code given as its name is read too).
const CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

#[derive(Deserialize)]
struct Results {
    /// The JSON gateway omits empty lists.
    #[serde(default)]
    results: Vec<Value>,
}

/// The HTTP status the gateway answers a google.rpc code with on a single
/// call (grpc-gateway's table); unknown codes are internal errors.
fn http_status(code: u64) -> StatusCode {
    match code {
        1 => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        3 | 9 | 11 => StatusCode::BAD_REQUEST,
        4 => StatusCode::GATEWAY_TIMEOUT,
        5 => StatusCode::NOT_FOUND,
        6 | 10 => StatusCode::CONFLICT,
        7 => StatusCode::FORBIDDEN,
        8 => StatusCode::TOO_MANY_REQUESTS,
        12 => StatusCode::NOT_IMPLEMENTED,
        14 => StatusCode::SERVICE_UNAVAILABLE,
        16 => StatusCode::UNAUTHORIZED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A google.rpc code as a number, or as its name.
fn code_number(code: &Value) -> Option<u64> {
    match code {
        Value::Number(number) => number.as_u64(),
        Value::String(name) => CODE_NAMES
            .iter()
            .position(|known| known == name)
            .map(|index| index as u64),
        _ => None,
    }
}

/// The body of a single update, accepting or moving one item.
pub(super) fn update_body(item_id: &str, state: &str, tracking_url: Option<&str>) -> Value {
    let mut body = json!({"id": item_id, "state": state});
    if let Some(url) = tracking_url {
        body["parcel_tracking_url"] = url.into();
    }
    body
}

/// Each update's outcome from a successful batch answer (`headers` and
/// `body`) to `sent` updates. An answer that does not hold one result per
/// update fails every update with a permanent error.
pub(super) fn outcomes(
    http: &HttpClient,
    headers: &HeaderMap,
    body: &[u8],
    sent: usize,
) -> Vec<Result<(), MarketplaceError>> {
    let answer = decode::<Results>(body).and_then(|answer| {
        if answer.results.len() == sent {
            Ok(answer.results)
        } else {
            Err(MarketplaceError::invalid(format!(
                "{METHOD}: `results` holds {} entries for {sent} updates",
                answer.results.len()
            )))
        }
    });
    match answer {
        Ok(results) => results
            .iter()
            .enumerate()
            .map(|(index, result)| outcome(http, headers, index, result))
            .collect(),
        Err(error) => vec![Err(error); sent],
    }
}

/// One result: the updated item, or its error as a single call gives it.
fn outcome(
    http: &HttpClient,
    headers: &HeaderMap,
    index: usize,
    result: &Value,
) -> Result<(), MarketplaceError> {
    if result["order_item"].is_object() {
        return Ok(());
    }
    let error = &result["error"];
    if !error.is_object() {
        return Err(MarketplaceError::invalid(format!(
            "{METHOD}: results[{index}] holds neither `order_item` nor `error`"
        )));
    }
    let code = code_number(&error["code"]).ok_or_else(|| {
        MarketplaceError::invalid(format!(
            "{METHOD}: results[{index}].error.code is not a google.rpc code"
        ))
    })?;
    let message = error["message"].as_str().unwrap_or_default();
    // The body a single call would have failed with, classified the same way.
    let single = json!({"code": code, "message": message, "details": []});
    Err(http.classify(http_status(code), headers, single.to_string().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::marketplace::budget::EndpointClass;
    use crate::marketplace::{MarketplaceConfig, MarketplaceKind, Secret};
    use crate::order_commands::is_refused_transition;

    fn http() -> HttpClient {
        let config = MarketplaceConfig::new(
            MarketplaceKind::Refurbed,
            "http://refurbed.invalid",
            Secret::new("RF-TOKEN"),
        );
        HttpClient::new(&config, HeaderMap::new(), vec!["RF-TOKEN".into()], |_| {
            EndpointClass::Orders
        })
        .unwrap()
    }

    fn run(body: Value, sent: usize) -> Vec<Result<(), MarketplaceError>> {
        outcomes(
            &http(),
            &HeaderMap::new(),
            body.to_string().as_bytes(),
            sent,
        )
    }

    #[test]
    fn each_result_maps_to_what_a_single_call_gives() {
        let http = http();
        let results = run(
            json!({"results": [
                {"order_item": {"id": "1", "state": "ACCEPTED"}},
                {"error": {"code": 3, "message": "item 2 cannot go from SHIPPED to ACCEPTED"}},
                {"error": {"code": 5, "message": "order item not found"}},
                {"error": {"code": "INVALID_ARGUMENT", "message": "by name"}},
                {"error": {"code": 8, "message": "slow down"}},
                {"error": {"code": 14, "message": "unavailable"}},
                {"error": {"code": 7, "message": "RF-TOKEN may not"}},
            ]}),
            7,
        );
        assert_eq!(results.len(), 7);
        assert_eq!(results[0], Ok(()));
        let illegal = results[1].clone().unwrap_err();
        assert!(is_refused_transition(&illegal), "{illegal:?}");
        // Exactly the error the single UpdateOrderItemState 400 gives.
        let single = http.classify(
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            br#"{"code":3,"message":"item 2 cannot go from SHIPPED to ACCEPTED","details":[]}"#,
        );
        assert_eq!(illegal, single);
        assert_eq!(
            illegal.message(),
            "HTTP 400: 3: item 2 cannot go from SHIPPED to ACCEPTED"
        );
        let missing = results[2].clone().unwrap_err();
        assert!(
            matches!(
                missing,
                MarketplaceError::Permanent {
                    status: Some(404),
                    ..
                }
            ),
            "{missing:?}"
        );
        assert!(!is_refused_transition(&missing));
        assert!(is_refused_transition(results[3].as_ref().unwrap_err()));
        assert_eq!(results[4].as_ref().unwrap_err().kind(), "rate_limited");
        assert_eq!(results[5].as_ref().unwrap_err().kind(), "transient");
        let denied = results[6].as_ref().unwrap_err();
        assert!(matches!(
            denied,
            MarketplaceError::Permanent {
                status: Some(403),
                ..
            }
        ));
        assert!(!denied.message().contains("RF-TOKEN"), "{denied}");
    }

    #[test]
    fn a_result_that_is_neither_names_the_field() {
        let results = run(
            json!({"results": [{"order_item": {}}, {"item": {}}, {"error": {"code": "NOPE"}}, "x"]}),
            4,
        );
        assert_eq!(results[0], Ok(()));
        for (index, field) in [
            (1, "results[1]"),
            (2, "results[2].error.code"),
            (3, "results[3]"),
        ] {
            let error = results[index].as_ref().unwrap_err();
            assert!(
                matches!(error, MarketplaceError::Permanent { status: None, .. }),
                "{error:?}"
            );
            assert!(error.message().contains(field), "{error}");
        }
    }

    #[test]
    fn an_answer_without_one_result_per_update_fails_them_all() {
        for body in [
            json!({"results": [{"order_item": {}}]}),
            json!({}),
            json!({"results": "nope"}),
        ] {
            let results = run(body.clone(), 2);
            assert_eq!(results.len(), 2, "{body}");
            assert!(
                results
                    .iter()
                    .all(|r| matches!(r, Err(MarketplaceError::Permanent { status: None, .. }))),
                "{body}: {results:?}"
            );
        }
        let results = outcomes(&http(), &HeaderMap::new(), b"{\"results\": [", 3);
        assert_eq!(results.len(), 3);
        assert!(results.iter().all(Result::is_err));
    }

    #[test]
    fn update_bodies() {
        assert_eq!(
            update_body("7", "ACCEPTED", None),
            json!({"id": "7", "state": "ACCEPTED"})
        );
        assert_eq!(
            update_body("7", "SHIPPED", Some("https://t.example/1")),
            json!({"id": "7", "state": "SHIPPED", "parcel_tracking_url": "https://t.example/1"})
        );
    }
}
