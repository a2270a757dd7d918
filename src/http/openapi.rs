//! `GET /openapi.json`: built by registering the routes (`super::routes`) on a throwaway app, so
//! every registered route is in the document and nothing else is. The statuses every operation
//! of a kind can answer (a missing key, a malformed body, a server failure) are added here, once.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use actix_web::{App, HttpResponse, get};
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, Response};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt;

use super::error::ErrorBody;
use super::formats;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchboard",
        description = "Call tracking: dynamic number insertion and call attribution. Every error \
            is `{\"error\":{\"code\",\"message\",\"field\"?}}`. Every `GET` also answers `HEAD` \
            (the same status and headers, no body); a method a path does not support answers \
            `405` with an `Allow` header.",
    ),
    // Schemas named only by parameters or `schema_with`, which utoipa does not collect.
    components(schemas(
        ErrorBody,
        formats::PhoneNumber,
        formats::E164,
        formats::PathNumber,
        formats::LocalDay,
        crate::reports::Dimension,
        formats::ReportFormat,
        crate::domain::CallStatus,
        crate::attribution::Confidence,
        crate::domain::Outcome,
        super::dashboard::AssetName,
    )),
)]
struct ApiDoc;

/// The document, built once.
pub static DOCUMENT: LazyLock<utoipa::openapi::OpenApi> = LazyLock::new(document);

static DOCUMENT_JSON: LazyLock<String> =
    LazyLock::new(|| DOCUMENT.to_json().expect("the OpenAPI document serializes"));

fn document() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(super::routes)
        .split_for_parts();
    // After the routes are in: these edit every operation.
    BearerAuth.modify(&mut doc);
    CommonResponses.modify(&mut doc);
    doc
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Responses shared by many operations, as `#/components/responses/<name>`: (status, name,
/// description).
const SHARED: [(&str, &str, &str); 9] = [
    (
        "400",
        "BadRequest",
        "The body is malformed (`malformed_json`, `malformed_csv`), names an unknown field \
         (`unknown_field`), or the query string cannot be parsed (`invalid_query`)",
    ),
    (
        "401",
        "Unauthorized",
        "No API key, or a wrong or revoked one (`WWW-Authenticate: Bearer`). `GET` requests may \
         use the dashboard's session cookie instead",
    ),
    (
        "404",
        "NotFound",
        "No such object in this account (another account's answers the same)",
    ),
    (
        "409",
        "Conflict",
        "The request conflicts with the state of another object",
    ),
    (
        "413",
        "PayloadTooLarge",
        "The body is larger than the service accepts (`max_body_bytes`)",
    ),
    (
        "415",
        "UnsupportedMediaType",
        "The body's `Content-Type` is not one this operation reads",
    ),
    (
        "422",
        "Unprocessable",
        "A field is invalid (`invalid_field`); `field` names it as a JSON path",
    ),
    (
        "500",
        "InternalError",
        "Something failed on the server's side; it was logged",
    ),
    (
        "503",
        "Unavailable",
        "The database is unavailable; retry shortly",
    ),
];

/// Adds what each kind of operation can answer besides its own statuses: 401 and 503 (the key is
/// looked up in the database) where an API key is required; 400, 413, 415 and 422 where a body
/// is read; 400 where a query string is; 500 everywhere. A response an operation lists without a
/// description gets the shared one for its status.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let error = || Content::new(Some(Ref::from_schema_name("ErrorBody")));
        let components = openapi.components.get_or_insert_with(Default::default);
        for (_, name, description) in SHARED {
            components.responses.insert(
                name.to_owned(),
                RefOr::T(
                    utoipa::openapi::ResponseBuilder::new()
                        .description(description)
                        .content("application/json", error())
                        .build(),
                ),
            );
        }
        for item in openapi.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
                &mut item.options,
            ]
            .into_iter()
            .flatten()
            {
                add_shared(op);
            }
        }
    }
}

fn add_shared(op: &mut Operation) {
    let mut wanted = vec!["500"];
    let authenticated = op
        .security
        .as_ref()
        .is_some_and(|s| s.iter().any(|r| *r != SecurityRequirement::default()));
    if authenticated {
        wanted.extend(["401", "503"]);
    }
    if let Some(RefOr::T(body)) = &op.request_body {
        let json = body.content.keys().any(|c| c.ends_with("json"));
        wanted.extend(["400", "413"]);
        if json {
            wanted.extend(["415", "422"]);
        }
    }
    let has_query = op
        .parameters
        .iter()
        .flatten()
        .any(|p| matches!(p, RefOr::T(p) if p.parameter_in == ParameterIn::Query));
    if has_query {
        wanted.push("400");
    }
    let responses = &mut op.responses.responses;
    for status in wanted {
        responses
            .entry(status.to_owned())
            .or_insert_with(|| shared_ref(status).expect("a shared response"));
    }
    // Listed without a description: the shared one says it.
    for (status, response) in responses.iter_mut() {
        if let RefOr::T(Response { description, .. }) = response
            && description.is_empty()
            && let Some(shared) = shared_ref(status)
        {
            *response = shared;
        }
    }
}

fn shared_ref(status: &str) -> Option<RefOr<Response>> {
    SHARED
        .iter()
        .find(|(s, _, _)| *s == status)
        .map(|(_, name, _)| RefOr::Ref(Ref::new(format!("#/components/responses/{name}"))))
}

/// Every path of the document with the methods it answers (HEAD aside): the table `methods`
/// routes HEAD and 405 by.
pub fn path_methods() -> BTreeMap<String, Vec<&'static str>> {
    DOCUMENT
        .paths
        .paths
        .iter()
        .map(|(path, item)| {
            let methods = [
                ("GET", &item.get),
                ("POST", &item.post),
                ("PUT", &item.put),
                ("PATCH", &item.patch),
                ("DELETE", &item.delete),
                ("OPTIONS", &item.options),
            ]
            .into_iter()
            .filter(|(_, op)| op.is_some())
            .map(|(m, _)| m)
            .collect();
            (path.clone(), methods)
        })
        .collect()
}

#[utoipa::path(
    tag = "operations",
    responses((status = 200, description = "This document (OpenAPI 3.1)", content_type = "application/json", body = Object)),
)]
#[get("/openapi.json")]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(DOCUMENT_JSON.as_str())
}
