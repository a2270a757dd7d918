//! The one error shape every endpoint answers with: `{"error":{"code","message"}}`
//! (plus `field` when one input is at fault).

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::FieldError;
use crate::storage::StorageError;

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `invalid_field`, `not_found`, `number_taken`, ...
    pub code: &'static str,
    /// For people: what is wrong and how to fix it.
    pub message: String,
    /// The input at fault, as a JSON path (`numbers[2]`), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
    /// The underlying cause of a server-side failure: logged, never sent.
    source: Option<anyhow::Error>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            source: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub fn internal(source: impl Into<anyhow::Error>) -> Self {
        Self {
            source: Some(source.into()),
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "something went wrong on our side; it has been logged",
            )
        }
    }

    pub fn unavailable(source: impl Into<anyhow::Error>) -> Self {
        Self {
            source: Some(source.into()),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the database is unavailable; retry shortly",
            )
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )?;
        if let Some(source) = &self.source {
            write!(f, "; caused by: {source:#}")?;
        }
        Ok(())
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        if self.status.is_server_error() {
            // The cause chain goes to the log; the client gets a stable message.
            tracing::error!(code = self.code, error = ?self, "request failed");
        }
        let mut response = HttpResponse::build(self.status).json(ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message.clone(),
                field: self.field.clone(),
            },
        });
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            format!("`{}` {}", e.field, e.message),
        )
        .with_field(e.field)
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound => ApiError::not_found("object"),
            StorageError::NumberTaken(n) => ApiError::new(
                StatusCode::CONFLICT,
                "number_taken",
                format!(
                    "{n} is already a tracking number in a pool; a number can be in one pool only"
                ),
            ),
            StorageError::NumberQuarantined(n) => ApiError::new(
                StatusCode::CONFLICT,
                "number_quarantined",
                format!(
                    "{n} was retired by another account recently; it stays with that account \
                     for the quarantine period, so that its former callers do not reach you"
                ),
            ),
            StorageError::LastApiKey => ApiError::new(
                StatusCode::CONFLICT,
                "last_api_key",
                "this is the account's last live API key; create another before revoking it",
            ),
            StorageError::SourcePoolFull => ApiError::new(
                StatusCode::CONFLICT,
                "source_pool_full",
                "a source pool shows one static number; retire it before adding another",
            )
            .with_field("numbers"),
            StorageError::Database(
                ref db @ (sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed),
            ) => {
                let msg = db.to_string();
                ApiError::unavailable(anyhow::Error::new(e).context(msg))
            }
            other => ApiError::internal(other),
        }
    }
}
