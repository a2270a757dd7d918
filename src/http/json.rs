//! `ApiJson<T>`: a JSON body extractor whose every failure is a clear `{"error":...}` naming the
//! field at fault, with a size limit enforced while reading.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// The largest body accepted, set per app from `max_body_bytes`.
#[derive(Clone, Copy)]
pub struct BodyLimit(pub usize);

pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for ApiJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = body_limit(req);
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        let mut payload = payload.take();
        Box::pin(async move {
            // text/plain is accepted so browsers can POST without a CORS preflight.
            if let Some(ct) = content_type.as_deref()
                && !(ct == "application/json" || ct.ends_with("+json") || ct == "text/plain")
            {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    format!("send a JSON body (Content-Type: application/json), not {ct}"),
                ));
            }
            let body = read_limited(&mut payload, limit).await?;
            parse(&body).map(ApiJson)
        })
    }
}

/// A raw body (a provider's form or signed JSON) read up to the app's `max_body_bytes`, so an
/// oversized or unreadable one gets the API's JSON error rather than actix's plain-text one.
pub struct ApiBody(pub web::Bytes);

impl FromRequest for ApiBody {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = body_limit(req);
        let mut payload = payload.take();
        Box::pin(async move {
            read_limited(&mut payload, limit)
                .await
                .map(|b| ApiBody(b.freeze()))
        })
    }
}

fn body_limit(req: &HttpRequest) -> usize {
    req.app_data::<web::Data<BodyLimit>>()
        .map_or(64 * 1024, |l| l.0)
}

/// Reads the whole body, refusing it as soon as it passes `limit` bytes.
async fn read_limited(payload: &mut Payload, limit: usize) -> Result<web::BytesMut, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::new(StatusCode::BAD_REQUEST, "unreadable_body", e.to_string())
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the body is larger than {limit} bytes"),
    )
}

/// Parses JSON, reporting the path of the field that failed.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            "the body is empty; send a JSON object",
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the body is not valid JSON: {e}"),
        )
    })?;
    serde_path_to_error::deserialize(strict::Strict(value)).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        if message.starts_with("unknown field") {
            // The path already ends with the unknown key; fall back to serde's backticked name.
            let field = if path == "." {
                message.split('`').nth(1).unwrap_or_default().to_owned()
            } else {
                path
            };
            ApiError::new(StatusCode::BAD_REQUEST, "unknown_field", message).with_field(field)
        } else if path == "." {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message)
        } else {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_field",
                format!("`{path}`: {message}"),
            )
            .with_field(path)
        }
    })
}

/// A JSON value read as the API's schema says, not as serde alone would: an object is never
/// read from an array (serde fills a struct from a sequence, positionally), and a number with
/// no fraction is an integer (`20.0` is the integer 20, as JSON Schema has it).
mod strict {
    use serde::de::value::{MapAccessDeserializer, MapDeserializer, SeqDeserializer};
    use serde::de::{self, Deserializer, IntoDeserializer, Unexpected, Visitor};
    use serde_json::{Error, Number, Value};

    pub struct Strict(pub Value);

    impl<'de> IntoDeserializer<'de, Error> for Strict {
        type Deserializer = Self;

        fn into_deserializer(self) -> Self {
            self
        }
    }

    /// Integral floats within f64's exact integers become integers.
    fn visit_number<'de, V: Visitor<'de>>(n: Number, visitor: V) -> Result<V::Value, Error> {
        const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
        if let Some(u) = n.as_u64() {
            visitor.visit_u64(u)
        } else if let Some(i) = n.as_i64() {
            visitor.visit_i64(i)
        } else {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f.fract() == 0.0 && f.abs() < EXACT {
                visitor.visit_i64(f as i64)
            } else {
                visitor.visit_f64(f)
            }
        }
    }

    fn map<'de>(
        object: serde_json::Map<String, Value>,
    ) -> MapDeserializer<'de, impl Iterator<Item = (String, Strict)>, Error> {
        MapDeserializer::new(object.into_iter().map(|(k, v)| (k, Strict(v))))
    }

    impl<'de> Deserializer<'de> for Strict {
        type Error = Error;

        fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            match self.0 {
                Value::Null => visitor.visit_unit(),
                Value::Bool(b) => visitor.visit_bool(b),
                Value::Number(n) => visit_number(n, visitor),
                Value::String(s) => visitor.visit_string(s),
                Value::Array(items) => {
                    visitor.visit_seq(SeqDeserializer::new(items.into_iter().map(Strict)))
                }
                Value::Object(object) => visitor.visit_map(map(object)),
            }
        }

        fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            match self.0 {
                Value::Null => visitor.visit_none(),
                _ => visitor.visit_some(self),
            }
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            _fields: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, Error> {
            match self.0 {
                Value::Array(_) => Err(de::Error::invalid_type(Unexpected::Seq, &visitor)),
                other => Strict(other).deserialize_any(visitor),
            }
        }

        fn deserialize_enum<V: Visitor<'de>>(
            self,
            _name: &'static str,
            _variants: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, Error> {
            match self.0 {
                Value::String(s) => visitor.visit_enum(s.into_deserializer()),
                Value::Object(object) => {
                    visitor.visit_enum(MapAccessDeserializer::new(map(object)))
                }
                other => Strict(other).deserialize_any(visitor),
            }
        }

        fn deserialize_newtype_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            visitor: V,
        ) -> Result<V::Value, Error> {
            visitor.visit_newtype_struct(self)
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier ignored_any
        }
    }
}
