use actix_web::{HttpResponse, get, patch, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::AuthedAccount;
use super::error::{ApiError, ErrorBody};
use super::json::ApiJson;
use crate::changes::Change;
use crate::domain::{
    CallSettingsPatch, Ga4Patch, Ga4Settings, LeadRule, NewProperty, PhoneNumber, PropertyInput,
    parse_dispositions, parse_http_url, present,
};
use crate::storage::{Property, StorageError};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePropertyRequest {
    #[schema(value_type = super::formats::Name)]
    pub name: String,
    /// Hosts the snippet runs on; subdomains are included.
    #[schema(value_type = Vec<super::formats::Domain>, min_items = 1, max_items = 100)]
    pub domains: Vec<String>,
    /// The number the site publishes today.
    #[schema(value_type = super::formats::PhoneNumber)]
    pub default_number: String,
    /// Where calls are forwarded. Defaults to `default_number`.
    #[serde(default)]
    #[schema(value_type = Option<super::formats::PhoneNumber>)]
    pub forward_to: Option<String>,
    /// IANA time zone for reports. Defaults to UTC.
    #[serde(default)]
    #[schema(value_type = Option<super::formats::TimeZone>)]
    pub timezone: Option<String>,
    /// ISO 4217 currency. Defaults to USD.
    #[serde(default)]
    #[schema(value_type = Option<super::formats::Currency>)]
    pub currency: Option<String>,
    /// How calls ring through; every field is optional.
    #[serde(default)]
    pub call_settings: Option<CallSettingsPatch>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePropertyRequest {
    /// Where calls to the property's tracking numbers ring now (E.164); every instance dials
    /// the new number within a second.
    #[serde(default)]
    #[schema(value_type = Option<super::formats::PhoneNumber>)]
    pub forward_to: Option<String>,
    /// Changes to how calls ring through; absent fields stay as they are.
    #[serde(default)]
    pub call_settings: Option<CallSettingsPatch>,
    /// The dispositions the business may give calls (replaces the list).
    #[serde(default)]
    #[schema(value_type = Option<Vec<super::formats::Disposition>>, min_items = 1, max_items = 50)]
    pub dispositions: Option<Vec<String>>,
    /// When a completed call is a qualified lead (applies to calls completing from now on).
    #[serde(default)]
    pub lead_rule: Option<LeadRule>,
    /// Sends completed calls to GA4 as Measurement Protocol events: `measurement_id` and
    /// `api_secret` (required the first time), `endpoint`, `event_name`; absent fields stay.
    /// `null` stops sending.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Ga4Patch>)]
    pub ga4: Option<Option<Ga4Patch>>,
}

#[derive(Serialize, ToSchema)]
pub struct PropertyList {
    pub properties: Vec<PropertyView>,
}

/// A property as the API shows it: the stored fields plus the tag to paste into the site.
#[derive(Serialize, ToSchema)]
pub struct PropertyView {
    #[serde(flatten)]
    pub property: Property,
    /// `<script async src=".../dni.v<version>.js" integrity="sha384-…" crossorigin="anonymous" data-key="…">`
    pub snippet_tag: String,
}

impl PropertyView {
    fn new(property: Property, state: &AppState) -> Self {
        let snippet_tag =
            super::snippet::SNIPPET.tag(state.settings.public_url.as_str(), &property.public_key);
        Self {
            property,
            snippet_tag,
        }
    }
}

#[utoipa::path(
    tag = "properties",
    request_body = CreatePropertyRequest,
    responses(
        (status = 201, description = "Created", body = PropertyView),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Missing or wrong API key", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[post("/v1/properties")]
pub async fn create_property(
    state: web::Data<AppState>,
    account: AuthedAccount,
    ApiJson(body): ApiJson<CreatePropertyRequest>,
) -> Result<HttpResponse, ApiError> {
    let new = NewProperty::parse(PropertyInput {
        name: &body.name,
        domains: &body.domains,
        default_number: &body.default_number,
        forward_to: body.forward_to.as_deref(),
        timezone: body.timezone.as_deref(),
        currency: body.currency.as_deref(),
        call_settings: body.call_settings.as_ref(),
    })?;
    state
        .settings
        .forward_countries
        .check("forward_to", &new.forward_to, &new.default_number)?;
    let property = state
        .storage
        .create_property(account.id(), &new, state.clock.now_ms())
        .await?;
    tracing::info!(property_id = %property.id, account_id = %account.id(), "property created");
    Ok(HttpResponse::Created().json(PropertyView::new(property, &state)))
}

#[utoipa::path(
    tag = "properties",
    responses(
        (status = 200, description = "The account's properties", body = PropertyList),
        (status = 401, body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[get("/v1/properties")]
pub async fn list_properties(
    state: web::Data<AppState>,
    account: AuthedAccount,
) -> Result<HttpResponse, ApiError> {
    let properties = state
        .storage
        .list_properties(account.id())
        .await?
        .into_iter()
        .map(|p| PropertyView::new(p, &state))
        .collect();
    Ok(HttpResponse::Ok().json(PropertyList { properties }))
}

#[utoipa::path(
    tag = "properties",
    params(("id" = String, Path, description = "Property id")),
    responses(
        (status = 200, description = "The property", body = PropertyView),
        (status = 404, description = "No such property in this account", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[get("/v1/properties/{id}")]
pub async fn get_property(
    state: web::Data<AppState>,
    account: AuthedAccount,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let property = property_of(&state, &account, &id).await?;
    Ok(HttpResponse::Ok().json(PropertyView::new(property, &state)))
}

#[utoipa::path(
    tag = "properties",
    params(("id" = String, Path, description = "Property id")),
    request_body = UpdatePropertyRequest,
    responses(
        (status = 200, description = "The property, updated", body = PropertyView),
        (status = 404, description = "No such property in this account", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
#[patch("/v1/properties/{id}")]
pub async fn update_property(
    state: web::Data<AppState>,
    account: AuthedAccount,
    id: web::Path<String>,
    ApiJson(body): ApiJson<UpdatePropertyRequest>,
) -> Result<HttpResponse, ApiError> {
    let mut property = state
        .storage
        .property(account.id(), &id)
        .await
        .map_err(not_found("property"))?;
    let forward_to = match &body.forward_to {
        Some(n) => {
            let to = PhoneNumber::parse_destination("forward_to", n)?;
            let home = PhoneNumber::from_trusted(property.default_number.clone());
            state
                .settings
                .forward_countries
                .check("forward_to", &to, &home)?;
            to.to_string()
        }
        None => property.forward_to.clone(),
    };
    let settings = match &body.call_settings {
        Some(patch) => property.call_settings.patched(patch, "call_settings")?,
        None => property.call_settings.clone(),
    };
    let dispositions = match &body.dispositions {
        Some(list) => parse_dispositions(list)?,
        None => property.dispositions.clone(),
    };
    let lead_rule = match body.lead_rule.clone() {
        Some(rule) => rule.check()?,
        None => property.lead_rule.clone(),
    };
    let ga4 = match &body.ga4 {
        Some(Some(patch)) => Some(Ga4Settings::patched(property.ga4.as_ref(), patch)?),
        Some(None) => None,
        None => property.ga4.clone(),
    };
    if let (
        Some(Some(Ga4Patch {
            endpoint: Some(_), ..
        })),
        Some(ga4),
    ) = (&body.ga4, &ga4)
    {
        // Never into the operator's network (checked again as each event connects).
        let endpoint = parse_http_url("ga4.endpoint", &ga4.endpoint)?;
        state
            .webhooks
            .outbound()
            .check_saved("ga4.endpoint", &endpoint)
            .await?;
    }
    property.forward_to = forward_to;
    property.call_settings = settings;
    property.dispositions = dispositions;
    property.lead_rule = lead_rule;
    property.ga4 = ga4;
    state
        .storage
        .update_property_settings(account.id(), &property)
        .await
        .map_err(not_found("property"))?;
    // Calls ring through with the new settings at once, on every instance.
    state
        .changes
        .announce(&[Change::Routes, Change::Property(property.id.clone())])
        .await;
    tracing::info!(property_id = %property.id, ga4 = property.ga4.is_some(), "property settings changed");
    Ok(HttpResponse::Ok().json(PropertyView::new(property, &state)))
}

/// Names the missing object in a 404, keeping every other error as it is.
/// The account's property `id`; another account's answers 404, as one that does not exist.
pub(super) async fn property_of(
    state: &AppState,
    account: &AuthedAccount,
    id: &str,
) -> Result<Property, ApiError> {
    state
        .storage
        .property(account.id(), id)
        .await
        .map_err(not_found("property"))
}

pub(super) fn not_found(what: &'static str) -> impl Fn(StorageError) -> ApiError {
    move |e| match e {
        StorageError::NotFound => ApiError::not_found(what),
        other => other.into(),
    }
}
