//! `GET /openapi.json`, generated from the handlers' annotations.

use actix_web::{HttpResponse, get};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    account, alerts, calls, dni, error, exports, health, live, metrics, pools, properties, reports,
    telephony, webhooks,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "Switchboard", description = "Call tracking: dynamic number insertion and call attribution."),
    paths(
        properties::create_property,
        properties::list_properties,
        properties::get_property,
        properties::update_property,
        pools::create_pool,
        pools::list_pools,
        pools::get_pool,
        pools::list_numbers,
        pools::add_numbers,
        pools::retire_number,
        pools::pool_health,
        dni::session,
        calls::list_calls,
        calls::get_call,
        calls::update_call,
        calls::add_conversion,
        calls::undo_conversion,
        calls::add_conversion_by_caller,
        calls::erase_caller,
        live::live_feed,
        exports::google_ads,
        telephony::generic_call,
        account::get_telephony,
        account::put_telephony,
        account::rotate_calls_secret,
        webhooks::create_webhook,
        webhooks::list_webhooks,
        webhooks::delete_webhook,
        webhooks::list_deliveries,
        reports::attribution_report,
        reports::service_report,
        reports::upload_costs,
        reports::list_costs,
        reports::get_cost_settings,
        reports::put_cost_settings,
        alerts::get_alerts,
        alerts::put_alerts,
        health::health,
        health::ping,
        metrics::metrics,
    ),
    components(schemas(error::ErrorBody)),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

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

#[get("/openapi.json")]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
