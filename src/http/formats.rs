//! The string formats the API parses, as named schemas: request fields point at them with
//! `#[schema(value_type = ...)]`, so each constraint the server enforces is written once. A
//! pattern says what a regular expression can; `format` names the rest (a valid number, a known
//! time zone), which only the server can decide.

#![allow(dead_code)] // Never built: each only describes.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

/// A phone number in E.164 (`+14155550100`) that libphonenumber's metadata holds valid.
#[derive(ToSchema)]
#[schema(
    value_type = String,
    format = "e164",
    pattern = r"^\+[1-9][0-9]{6,14}$",
    example = "+14155550100"
)]
pub struct E164(String);

/// A number in a URL path: E.164, the `+` percent-encoded (`%2B`) or left out.
#[derive(ToSchema)]
#[schema(
    value_type = String,
    format = "e164",
    pattern = r"^\+?[1-9][0-9]{6,14}$",
    example = "+14155550100"
)]
pub struct PathNumber(String);

/// A phone number with its country code, that libphonenumber's metadata holds valid: E.164
/// (`+14155550100`), or spelled with spaces, dots, dashes or brackets (`+1 (415) 555-0100`,
/// `0044 20 7946 0958`). It is stored, and answered, in E.164.
#[derive(ToSchema)]
#[schema(
    value_type = String,
    format = "e164",
    pattern = r"^\s*(\+[0-9 ().\-]{6,40}|00[0-9 ().\-]{4,38})\s*$",
    example = "+14155550100"
)]
pub struct PhoneNumber(String);

/// A list of `PhoneNumber`s, each listed once: `MIN` to 1000 of them.
pub fn phone_numbers<const MIN: usize>() -> utoipa::openapi::Array {
    utoipa::openapi::ArrayBuilder::new()
        .items(utoipa::openapi::Ref::from_schema_name("PhoneNumber"))
        .min_items((MIN > 0).then_some(MIN))
        .max_items(Some(1000))
        .unique_items(true)
        .build()
}

/// Text with at least one character that is not white space (it is trimmed).
#[derive(ToSchema)]
#[schema(value_type = String, min_length = 1, max_length = 200, pattern = r"\S")]
pub struct Name(String);

/// A host name the snippet runs on (`example.com`; subdomains are included), with a dot, or
/// `localhost`, or an IP address. Not a URL.
#[derive(ToSchema)]
#[schema(
    value_type = String,
    format = "domain",
    pattern = r"^\s*(localhost|[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+|\[[0-9A-Fa-f:.]+\])\.*\s*$",
    max_length = 253,
    example = "example.com"
)]
pub struct Domain(String);

/// An IANA time zone (`America/New_York`).
#[derive(ToSchema)]
#[schema(value_type = String, format = "iana-time-zone", min_length = 1, example = "America/New_York")]
pub struct TimeZone(String);

/// An ISO 4217 currency code (`USD`; case does not matter).
#[derive(ToSchema)]
#[schema(
    value_type = String,
    format = "iso-4217",
    pattern = r"^[A-Za-z]{3}$",
    example = "USD"
)]
pub struct Currency(String);

/// An absolute `http://` or `https://` URL with a host and no user name or password.
#[derive(ToSchema)]
#[schema(
    value_type = String,
    format = "uri",
    min_length = 1,
    pattern = r"^[Hh][Tt][Tt][Pp][Ss]?://[^/?#@\s]+([/?#]\S*)?$",
    max_length = 2048,
    example = "https://crm.example/hooks"
)]
pub struct HttpUrl(String);

/// A day, `YYYY-MM-DD`.
#[derive(ToSchema)]
#[schema(value_type = String, format = Date, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", example = "2026-11-23")]
pub struct LocalDay(String);

/// A tag: text of 1-50 characters, not only white space.
#[derive(ToSchema)]
#[schema(value_type = String, min_length = 1, max_length = 50, pattern = r"\S")]
pub struct Tag(String);

/// A word of letters, digits, `_` or `-` (at most 40; compared in lower case).
#[derive(ToSchema)]
#[schema(value_type = String, pattern = r"^\s*[A-Za-z0-9_-]{1,40}\s*$", example = "appointment")]
pub struct Disposition(String);

/// The string enum of a type's names, from the type's own list, so the two cannot differ.
fn names(description: &str, names: impl IntoIterator<Item = &'static str>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(names))
        .description(Some(description))
        .into()
}

impl PartialSchema for crate::domain::CallStatus {
    fn schema() -> RefOr<Schema> {
        names("A call's status.", Self::ALL.map(Self::as_str))
    }
}
impl ToSchema for crate::domain::CallStatus {}

impl PartialSchema for crate::attribution::Confidence {
    fn schema() -> RefOr<Schema> {
        names(
            "How sure the attribution is: `source` (a source pool's number), `exact` (one session \
             held the number), `shared`, `overflow`, `expired` (a session whose lease had ended), \
             `repeat` (the caller called this number before from that visit) or `none`.",
            Self::ALL.map(Self::as_str),
        )
    }
}
impl ToSchema for crate::attribution::Confidence {}

impl PartialSchema for crate::domain::Outcome {
    fn schema() -> RefOr<Schema> {
        names(
            "Whether the business answered a call.",
            [Self::Answered, Self::Missed].map(Self::as_str),
        )
    }
}
impl ToSchema for crate::domain::Outcome {}

impl PartialSchema for crate::reports::Dimension {
    fn schema() -> RefOr<Schema> {
        names(
            "A report's dimension: what each row stands for.",
            Self::ALL.map(Self::as_str),
        )
    }
}
impl ToSchema for crate::reports::Dimension {}

/// A report's format.
#[derive(ToSchema, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportFormat {
    Json,
    Csv,
}
