//! The project's own response schemas: for each object, the fields it must
//! carry and their JSON types, written from Back Market's OpenAPI document
//! (ListingPublic, Order, OrderLine, careFolder, the paginated envelope)
//! and WooCommerce's REST documentation (orders, products, variations).

use serde_json::Value;

/// A JSON type as the documents give it.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Int,
    Number,
    Str,
    Bool,
    Array,
    Object,
    /// A string in UUID form.
    Uuid,
    /// An RFC 3339 timestamp.
    Time,
}

/// `(field, kind, nullable)`: the field is required; null only when nullable.
pub type Schema = &'static [(&'static str, Kind, bool)];

fn is(kind: Kind, value: &Value) -> bool {
    match kind {
        Kind::Int => value.is_i64() || value.is_u64(),
        Kind::Number => value.is_number(),
        Kind::Str => value.is_string(),
        Kind::Bool => value.is_boolean(),
        Kind::Array => value.is_array(),
        Kind::Object => value.is_object(),
        Kind::Uuid => value.as_str().is_some_and(|s| {
            s.len() == 36
                && s.chars().enumerate().all(|(i, c)| match i {
                    8 | 13 | 18 | 23 => c == '-',
                    _ => c.is_ascii_hexdigit(),
                })
        }),
        Kind::Time => value
            .as_str()
            .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok()),
    }
}

/// Every violation of `schema` in `value`, named by `path.field`.
pub fn violations(path: &str, schema: Schema, value: &Value) -> Vec<String> {
    let mut found = Vec::new();
    if !value.is_object() {
        return vec![format!("{path}: not an object: {value}")];
    }
    for (field, kind, nullable) in schema {
        match value.get(*field) {
            None => found.push(format!("{path}.{field}: missing")),
            Some(Value::Null) if *nullable => {}
            Some(found_value) if is(*kind, found_value) => {}
            Some(other) => found.push(format!("{path}.{field}: not {kind:?}: {other}")),
        }
    }
    found
}

/// Panics with every violation at once.
pub fn check(path: &str, schema: Schema, value: &Value) {
    let found = violations(path, schema, value);
    assert!(found.is_empty(), "{}\nin {value:#}", found.join("\n"));
}

use Kind::*;

/// Back Market: `{count, next, previous, results}` (all required).
pub const BM_PAGE: Schema = &[
    ("count", Int, false),
    ("next", Str, true),
    ("previous", Str, true),
    ("results", Array, false),
];

/// Back Market ListingPublic: every field the document marks required.
pub const BM_LISTING: Schema = &[
    ("id", Uuid, false),
    ("listing_id", Int, false),
    ("product_id", Uuid, false),
    ("backmarket_id", Int, false),
    ("title", Str, false),
    ("shippings", Array, false),
    ("state", Int, false),
    ("grade", Str, false),
    ("quantity", Int, false),
    ("currency", Str, false),
    ("sku", Str, false),
    ("publication_state", Int, false),
    ("warranty_delay", Int, false),
    ("price", Str, false),
    ("comment", Str, true),
    ("min_price", Str, true),
    ("max_price", Str, false),
];

/// Single-listing answers (GET by id, GET detail, POST update) add `statuscode`.
pub const BM_SINGLE_LISTING: Schema = &[("statuscode", Int, false)];

/// One item of a listing's `shippings`.
pub const BM_SHIPPING: Schema = &[
    ("shipping_price", Str, false),
    ("shipping_delay", Int, false),
    ("shipper", Str, false),
    ("shipper_display", Str, false),
    ("country_code", Str, false),
];

/// Back Market Order: the document requires none, so these are the fields
/// the adapter reads and marketplace-apis.md lists, with the document's types.
pub const BM_ORDER: Schema = &[
    ("order_id", Int, false),
    ("state", Int, false),
    ("date_creation", Time, false),
    ("date_modification", Time, false),
    ("date_payment", Time, true),
    ("date_shipping", Time, true),
    ("shipping_address", Object, false),
    ("billing_address", Object, false),
    ("delivery_note", Str, true),
    ("tracking_number", Str, true),
    ("tracking_url", Str, true),
    ("shipper_display", Str, true),
    ("price", Str, false),
    ("shipping_price", Str, false),
    ("currency", Str, false),
    ("country_code", Str, false),
    ("orderlines", Array, false),
];

pub const BM_ORDERLINE: Schema = &[
    ("id", Int, false),
    ("state", Int, false),
    ("listing", Str, false),
    ("listing_id", Int, true),
    ("product", Str, false),
    ("quantity", Int, false),
    ("price", Str, false),
    ("shipping_price", Str, false),
    ("currency", Str, false),
    ("imei", Str, true),
    ("serial_number", Str, true),
    ("return_reason", Int, true),
    ("return_message", Str, true),
];

/// Back Market careFolder (the fields stockfleet reads).
pub const BM_CARE: Schema = &[
    ("id", Int, false),
    ("orderline", Int, false),
    ("state", Int, false),
    ("lines", Array, false),
    ("country_code", Str, false),
    ("date_creation", Time, false),
    ("date_modification", Time, false),
    ("date_closed", Time, true),
];

/// Back Market's error envelope (ErrorResponseV1).
pub const BM_ERROR: Schema = &[("error", Object, false)];
pub const BM_ERROR_DETAIL: Schema = &[("code", Str, false), ("message", Str, false)];

/// WooCommerce order (REST v3, the fields marketplace-apis.md summarises).
pub const WOO_ORDER: Schema = &[
    ("id", Int, false),
    ("number", Str, false),
    ("status", Str, false),
    ("currency", Str, false),
    ("date_created", Str, false),
    ("date_created_gmt", Str, false),
    ("date_modified", Str, false),
    ("date_modified_gmt", Str, false),
    ("total", Str, false),
    ("billing", Object, false),
    ("shipping", Object, false),
    ("line_items", Array, false),
    ("meta_data", Array, false),
];

pub const WOO_LINE_ITEM: Schema = &[
    ("id", Int, false),
    ("name", Str, false),
    ("product_id", Int, false),
    ("variation_id", Int, false),
    ("quantity", Int, false),
    ("sku", Str, false),
    ("price", Number, false),
    ("total", Str, false),
];

/// WooCommerce product or variation.
pub const WOO_PRODUCT: Schema = &[
    ("id", Int, false),
    ("sku", Str, false),
    ("type", Str, false),
    ("price", Str, false),
    ("manage_stock", Bool, false),
    ("stock_quantity", Int, true),
    ("stock_status", Str, false),
];

/// WooCommerce's error body.
pub const WOO_ERROR: Schema = &[
    ("code", Str, false),
    ("message", Str, false),
    ("data", Object, false),
];

/// Refurbed order (refb.merchant.v1.Order) and its items.
pub const RF_ORDER: Schema = &[
    ("id", Str, false),
    ("released_at", Time, false),
    ("state", Str, false),
    ("currency_code", Str, false),
    ("total_charged", Str, false),
    ("total_paid", Str, false),
    ("items", Array, false),
];
