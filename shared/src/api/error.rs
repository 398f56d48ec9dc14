//! How the API answers a failure: a status and `{"error": "...", "field":
//! "..."}` (the field when one is to blame) that tells the caller what to do.
//! Internal errors are logged, not shown.

use crate::admin::stock::StockError;
use crate::admin::tokens::Role;
use crate::domain::input::{self, Invalid};
use crate::domain::listing::{Refused, Unknown};
use crate::domain::status_change::Refusal;
use crate::status_changes::RequestError;
use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Every error answer of the API (and of the framework's own refusals).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What is wrong and what to do.
    pub error: String,
    /// The field to blame, when one is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("send a valid API token: Authorization: Bearer <token> (stockfleet token create)")]
    Unauthenticated,
    /// A webhook without a valid signature (401, no bearer challenge).
    #[error("{0}")]
    Unsigned(String),
    #[error("this needs the {0} role")]
    Forbidden(Role),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    /// A filter, sort or choice naming a value that does not exist (400).
    #[error("{}", .0.reason)]
    UnknownValue(Invalid),
    /// The request is well-formed but the resource's state forbids it (409).
    #[error("{0}")]
    Conflict(String),
    /// A field refused by the edge's rules (422).
    #[error("{}", .0.reason)]
    Invalid(Invalid),
    /// Bytes no field can hold: a NUL, invalid UTF-8 (400).
    #[error("{}", .0.reason)]
    Malformed(Invalid),
    #[error("the request body is larger than the {0} bytes this endpoint takes")]
    TooLarge(usize),
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub(super) fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated | ApiError::Unsigned(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) | ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Malformed(_) | ApiError::UnknownValue(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            // A CHECK constraint refused a value the caller gave.
            sqlx::Error::Database(db) if db.is_check_violation() => ApiError::BadRequest(format!(
                "value out of range ({})",
                db.constraint().unwrap_or("a CHECK constraint")
            )),
            _ => ApiError::Internal(error.into()),
        }
    }
}

impl From<StockError> for ApiError {
    fn from(error: StockError) -> Self {
        match error {
            StockError::UnknownMarketplace(_) | StockError::UnknownSku(_) => {
                ApiError::NotFound(error.to_string())
            }
            StockError::NotCreated(_) => {
                ApiError::Invalid(Invalid::new("create", error.to_string()))
            }
            StockError::MissingReason => {
                ApiError::Invalid(Invalid::new("reason", error.to_string()))
            }
            StockError::Ledger(_) | StockError::Pooled(_) => {
                ApiError::BadRequest(error.to_string())
            }
            StockError::Invalid(invalid) => invalid.into(),
            StockError::Database(error) => error.into(),
        }
    }
}

impl From<RequestError> for ApiError {
    fn from(error: RequestError) -> Self {
        match error {
            RequestError::NoOrder { .. } => ApiError::NotFound(error.to_string()),
            RequestError::Refused(Refusal::Illegal(why)) => ApiError::Conflict(why),
            RequestError::Refused(Refusal::Missing { field, reason }) => {
                Invalid::new(field, reason).into()
            }
            RequestError::NoItem { .. } => Invalid::new("items", error.to_string()).into(),
            RequestError::Pending(_) => ApiError::Conflict(error.to_string()),
            RequestError::Database(error) => error.into(),
        }
    }
}

impl From<Refused> for ApiError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::Unknown(unknown) => unknown.into(),
            Refused::Invalid(invalid) => invalid.into(),
        }
    }
}

impl From<Unknown> for ApiError {
    fn from(Unknown(invalid): Unknown) -> Self {
        ApiError::UnknownValue(invalid)
    }
}

impl From<Invalid> for ApiError {
    /// A NUL is malformed bytes (400); any other refusal a bad value (422).
    fn from(invalid: Invalid) -> Self {
        if invalid.reason.contains("NUL") {
            ApiError::Malformed(invalid)
        } else {
            ApiError::Invalid(invalid)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            ApiError::Internal(error) => {
                tracing::error!(error = format!("{error:#}"), "API request failed");
                "internal error; the api's log has the details".to_owned()
            }
            other => other.to_string(),
        };
        let field = match &self {
            ApiError::Invalid(invalid)
            | ApiError::Malformed(invalid)
            | ApiError::UnknownValue(invalid) => Some(invalid.field.clone()),
            _ => None,
        };
        let body = Json(ErrorBody {
            error: message,
            field,
        });
        if matches!(self, ApiError::Unauthenticated) {
            (status, [(header::WWW_AUTHENTICATE, "Bearer")], body).into_response()
        } else {
            (status, body).into_response()
        }
    }
}

/// `Json<T>` whose refusal (bad JSON, a missing or unknown field, a wrong
/// content type, a NUL in a string, an oversized body) is answered like every
/// other error, naming the field where there is one.
pub(super) struct JsonBody<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for JsonBody<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let Json(value) = Json::<serde_json::Value>::from_request(request, state)
            .await
            .map_err(|rejection| match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(super::edge::BODY_LIMIT),
                _ => ApiError::BadRequest(rejection.body_text()),
            })?;
        input::json_strings("", &value)?;
        serde_path_to_error::deserialize(value)
            .map(JsonBody)
            .map_err(|error| {
                let message = error.inner().to_string();
                let path = error.path().to_string();
                // A missing field is named in the message, not in the path
                // (which stops at the object that lacks it).
                let field = match named_field(&message) {
                    _ if path == "." => named_field(&message).unwrap_or("body").to_owned(),
                    Some(name) if path != name && !path.ends_with(&format!(".{name}")) => {
                        format!("{path}.{name}")
                    }
                    _ => path,
                };
                ApiError::Invalid(Invalid::new(field, message))
            })
    }
}

/// The field serde's message names (`unknown field `x``, `missing field `x``).
fn named_field(message: &str) -> Option<&str> {
    message
        .split('`')
        .nth(1)
        .filter(|_| message.contains("field `"))
}

/// `Query<T>` refused the same way.
pub(super) struct QueryParams<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for QueryParams<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| QueryParams(value))
            .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))
    }
}
