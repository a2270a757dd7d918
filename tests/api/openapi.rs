//! `GET /openapi.json` against the service itself: every route is in it and routed, every
//! response is described, HEAD and 405 follow the same table, and the constraints it states are
//! the ones the server enforces.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_of};

/// Every public route, as README's tables list them. A route added to the service without
/// being added here (or removed) fails `the_document_lists_every_route_and_each_is_routed`.
const ROUTES: [(&str, &[&str]); 43] = [
    ("/dashboard", &["GET"]),
    ("/dashboard/assets/{name}", &["GET"]),
    ("/dashboard/sign-in", &["POST"]),
    ("/dashboard/sign-out", &["POST"]),
    ("/dni.js", &["GET"]),
    ("/dni.v{version}.js", &["GET"]),
    ("/health", &["GET"]),
    ("/health/ping", &["GET"]),
    ("/metrics", &["GET"]),
    ("/openapi.json", &["GET"]),
    ("/v1/account/keys", &["GET", "POST"]),
    ("/v1/account/keys/{id}", &["DELETE"]),
    ("/v1/account/telephony", &["GET", "PUT"]),
    ("/v1/account/telephony/calls-secret", &["POST"]),
    ("/v1/callers/{e164}", &["DELETE"]),
    ("/v1/calls/{id}", &["GET", "PATCH"]),
    ("/v1/calls/{id}/conversion", &["POST", "DELETE"]),
    ("/v1/dni/session", &["POST", "OPTIONS"]),
    ("/v1/pools/{id}", &["GET"]),
    ("/v1/pools/{id}/health", &["GET"]),
    ("/v1/pools/{id}/numbers", &["GET", "POST"]),
    ("/v1/pools/{id}/numbers/{e164}", &["DELETE"]),
    ("/v1/properties", &["GET", "POST"]),
    ("/v1/properties/{id}", &["GET", "PATCH"]),
    ("/v1/properties/{id}/alerts", &["GET", "PUT"]),
    ("/v1/properties/{id}/calls", &["GET"]),
    ("/v1/properties/{id}/conversions", &["POST"]),
    ("/v1/properties/{id}/cost-settings", &["GET", "PUT"]),
    ("/v1/properties/{id}/costs", &["GET", "POST"]),
    ("/v1/properties/{id}/exports/google-ads", &["GET"]),
    ("/v1/properties/{id}/live", &["GET"]),
    ("/v1/properties/{id}/pools", &["GET", "POST"]),
    ("/v1/properties/{id}/reports/attribution", &["GET"]),
    ("/v1/properties/{id}/reports/service", &["GET"]),
    ("/v1/telephony/calls", &["POST"]),
    ("/v1/telephony/twilio/dial", &["POST"]),
    ("/v1/telephony/twilio/recording", &["POST"]),
    ("/v1/telephony/twilio/status", &["POST"]),
    ("/v1/telephony/twilio/voice", &["POST"]),
    ("/v1/telephony/twilio/whisper", &["POST"]),
    ("/v1/webhooks", &["GET", "POST"]),
    ("/v1/webhooks/{id}", &["DELETE"]),
    ("/v1/webhooks/{id}/deliveries", &["GET"]),
];

crate::on_both_backends!(
    every_response_has_a_description_and_the_shared_errors_are_there,
    the_document_lists_every_route_and_each_is_routed,
    another_method_on_a_known_path_is_405_with_allow,
    head_answers_as_get_without_a_body_on_every_get_route,
    the_constraints_it_states_are_the_ones_enforced,
);

const METHODS: [&str; 6] = ["get", "post", "put", "patch", "delete", "options"];

async fn document(app: &TestApp) -> Value {
    let res = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.unwrap()
}

/// The document's operations: path → methods (upper case).
fn operations(doc: &Value) -> BTreeMap<String, BTreeSet<String>> {
    doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(path, item)| {
            let methods = METHODS
                .iter()
                .filter(|m| item.get(**m).is_some())
                .map(|m| m.to_uppercase())
                .collect();
            (path.clone(), methods)
        })
        .collect()
}

/// A concrete path for a templated one: ids that exist nowhere, a well-formed number.
fn concrete(path: &str) -> String {
    path.replace("{id}", "x")
        .replace("{e164}", "%2B14155550100")
        .replace("{name}", "live.js")
        .replace("{version}", &switchboard::http::snippet::SNIPPET.version)
}

/// `#/components/...` references, followed.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => doc
            .pointer(r.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("dangling {r}")),
        None => v,
    }
}

async fn every_response_has_a_description_and_the_shared_errors_are_there(app: TestApp) {
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let mut responses = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS.iter().filter(|m| item.get(**m).is_some()) {
            let op = &item[*method];
            let by_status = op["responses"].as_object().unwrap();
            for (status, response) in by_status {
                let described = resolve(&doc, response)["description"]
                    .as_str()
                    .is_some_and(|d| !d.trim().is_empty());
                assert!(described, "{method} {path} {status} has no description");
                responses += 1;
            }
            let has = |s: &str| by_status.contains_key(s);
            assert!(has("500"), "{method} {path}: no 500");
            if op.get("security").is_some() {
                assert!(has("401") && has("503"), "{method} {path}: no 401/503");
            }
            let json_body = op
                .pointer("/requestBody/content")
                .and_then(Value::as_object)
                .is_some_and(|c| c.contains_key("application/json"));
            if json_body {
                for s in ["400", "413", "415", "422"] {
                    assert!(has(s), "{method} {path}: a JSON body but no {s}");
                }
            }
        }
    }
    assert!(responses > 250, "only {responses} responses");
}

async fn the_document_lists_every_route_and_each_is_routed(app: TestApp) {
    let doc = document(&app).await;
    let documented = operations(&doc);
    let expected: BTreeMap<String, BTreeSet<String>> = ROUTES
        .iter()
        .map(|(p, ms)| (p.to_string(), ms.iter().map(|m| m.to_string()).collect()))
        .collect();
    assert_eq!(documented, expected);

    // Each documented operation reaches a handler: never the fallback's 404 or a 405.
    for (path, methods) in &documented {
        for method in methods {
            if path.ends_with("/live") {
                continue; // Its 404 for an unknown property is the handler's (below).
            }
            let res = app
                .client
                .request(
                    Method::from_bytes(method.as_bytes()).unwrap(),
                    app.url(&concrete(path)),
                )
                .bearer_auth(&app.api_key)
                .send()
                .await
                .unwrap();
            let status = res.status();
            let body = res.text().await.unwrap();
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert!(
                !body.contains("no such endpoint"),
                "{method} {path} is not routed: {status} {body}"
            );
        }
    }
    let res = app.get("/v1/properties/x/live", &app.api_key).await;
    assert_eq!(error_of(res).await.1["message"], "property not found");
}

async fn another_method_on_a_known_path_is_405_with_allow(app: TestApp) {
    let doc = document(&app).await;
    for (path, methods) in operations(&doc) {
        let unsupported = ["PUT", "PATCH", "DELETE", "POST", "GET"]
            .into_iter()
            .find(|m| !methods.contains(*m))
            .unwrap();
        let res = app
            .client
            .request(
                Method::from_bytes(unsupported.as_bytes()).unwrap(),
                app.url(&concrete(&path)),
            )
            .bearer_auth(&app.api_key)
            .send()
            .await
            .unwrap();
        let allow: BTreeSet<String> = res
            .headers()
            .get("allow")
            .unwrap_or_else(|| panic!("{unsupported} {path}: no Allow"))
            .to_str()
            .unwrap()
            .split(", ")
            .map(str::to_owned)
            .collect();
        let mut expected = methods.clone();
        if methods.contains("GET") {
            expected.insert("HEAD".to_owned());
        }
        assert_eq!(allow, expected, "{unsupported} {path}");
        let (status, error) = error_of(res).await;
        assert_eq!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{unsupported} {path}"
        );
        assert_eq!(error["code"], "method_not_allowed");
    }
    // A HEAD where no GET is: 405 too, and it says HEAD.
    let res = app
        .client
        .head(app.url("/v1/telephony/calls"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers()["allow"], "POST");
    // An unknown path is still 404.
    let (status, error) = error_of(app.get("/v2/nothing", &app.api_key).await).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
}

async fn head_answers_as_get_without_a_body_on_every_get_route(app: TestApp) {
    let property = app.create_property(&app.api_key).await;
    let pid = property["id"].as_str().unwrap();
    let pool = app.create_pool(&app.api_key, pid, &["+14155550150"]).await;
    let pool_id = pool["id"].as_str().unwrap();
    let doc = document(&app).await;
    // Headers that differ between any two answers.
    let volatile = ["date", "x-request-id", "content-length"];
    for (path, methods) in operations(&doc) {
        if !methods.contains("GET") {
            continue;
        }
        let url = app.url(
            &concrete(&path)
                .replace("/properties/x", &format!("/properties/{pid}"))
                .replace("/pools/x", &format!("/pools/{pool_id}")),
        );
        let query = "from=2026-05-01&to=2026-05-31";
        let url = if path.contains("/reports/")
            || path.ends_with("/costs")
            || path.ends_with("/google-ads")
        {
            format!("{url}?{query}")
        } else {
            url
        };
        let get = app
            .client
            .get(&url)
            .bearer_auth(&app.api_key)
            .send()
            .await
            .unwrap();
        let head = app
            .client
            .head(&url)
            .bearer_auth(&app.api_key)
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), get.status(), "HEAD {path}");
        let names = |r: &reqwest::Response| -> BTreeMap<String, String> {
            r.headers()
                .iter()
                .filter(|(n, _)| !volatile.contains(&n.as_str()))
                .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
                .collect()
        };
        assert_eq!(names(&head), names(&get), "HEAD {path}");
        let stream = path.ends_with("/live") && get.status() == StatusCode::OK;
        if !stream && !["/metrics", "/health"].contains(&path.as_str()) {
            // Bodies that do not change between two requests: the lengths agree.
            assert_eq!(
                head.headers().get("content-length"),
                get.headers().get("content-length"),
                "HEAD {path}"
            );
        }
        assert!(
            head.bytes().await.unwrap().is_empty(),
            "HEAD {path} has a body"
        );
        if !stream {
            assert!(
                !get.bytes().await.unwrap().is_empty(),
                "GET {path} has none"
            );
        }
    }
}

async fn the_constraints_it_states_are_the_ones_enforced(app: TestApp) {
    let doc = document(&app).await;
    let schema = |name: &str| doc["components"]["schemas"][name].clone();
    let param = |path: &str, method: &str, name: &str| -> Value {
        doc["paths"][path][method]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{method} {path}: no parameter {name}"))
            .clone()
    };

    // Phone numbers: a pattern in the document, a 422 for a number it does not match.
    let e164 = schema("PhoneNumber");
    assert_eq!(e164["format"], "e164");
    let pattern = e164["pattern"].as_str().unwrap();
    assert!(
        pattern.starts_with('^') && pattern.contains(r"\+"),
        "{pattern}"
    );
    assert_eq!(
        doc.pointer("/components/schemas/CreatePropertyRequest/properties/default_number/$ref"),
        Some(&json!("#/components/schemas/PhoneNumber"))
    );
    for bad in ["4155550100", "+14155550100*", "+1 415 CALL NOW"] {
        let mut body = crate::helpers::property_body();
        body["default_number"] = json!(bad);
        let (status, error) = error_of(app.post("/v1/properties", &app.api_key, &body).await).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert_eq!(error["field"], "default_number", "{bad}");
    }

    // Names: at least one visible character.
    let name = schema("Name");
    assert_eq!(
        (name["minLength"].as_u64(), name["pattern"].as_str()),
        (Some(1), Some(r"\S"))
    );
    let mut body = crate::helpers::property_body();
    body["name"] = json!("   ");
    let (status, _) = error_of(app.post("/v1/properties", &app.api_key, &body).await).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // An object is never read from an array, at the top or nested.
    let (status, _) = error_of(
        app.post(
            "/v1/properties",
            &app.api_key,
            &json!(["Acme", ["acme.example"], "+14155550100"]),
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let mut body = crate::helpers::property_body();
    body["call_settings"] = json!([30, true]);
    let (status, error) = error_of(app.post("/v1/properties", &app.api_key, &body).await).await;
    assert_eq!(
        (status, error["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("call_settings"))
    );
    // An integer may be written with a zero fraction, as JSON Schema has it.
    let mut body = crate::helpers::property_body();
    body["call_settings"] = json!({"ring_timeout_s": 30.0});
    let res = app.post("/v1/properties", &app.api_key, &body).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let property: Value = res.json().await.unwrap();
    assert_eq!(property["call_settings"]["ring_timeout_s"], 30);
    let pid = property["id"].as_str().unwrap();

    // `limit` 1-500, integer.
    let limit = param("/v1/properties/{id}/calls", "get", "limit");
    assert_eq!(limit["schema"]["minimum"], 1);
    assert_eq!(limit["schema"]["maximum"], 500);
    for (query, status) in [
        ("limit=0", 422),
        ("limit=501", 422),
        ("limit=1.5", 400),
        ("limit=500", 200),
    ] {
        let res = app
            .get(&format!("/v1/properties/{pid}/calls?{query}"), &app.api_key)
            .await;
        assert_eq!(res.status().as_u16(), status, "{query}");
    }

    // Reports: `from` and `to` are required.
    for name in ["from", "to"] {
        assert_eq!(
            param("/v1/properties/{id}/reports/attribution", "get", name)["required"],
            true
        );
    }
    let res = app
        .get(
            &format!("/v1/properties/{pid}/reports/attribution?to=2026-05-01"),
            &app.api_key,
        )
        .await;
    let (status, error) = error_of(res).await;
    assert_eq!(
        (status, error["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("from"))
    );
    let res = app
        .get(
            &format!("/v1/properties/{pid}/reports/attribution?from=2026-5-01&to=2026-05-01"),
            &app.api_key,
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // `target` is strictly between 0 and 1.
    let pool = app.create_pool(&app.api_key, pid, &["+14155550160"]).await;
    let target = param("/v1/pools/{id}/health", "get", "target");
    assert_eq!(
        (
            target["schema"]["exclusiveMinimum"].as_f64(),
            target["schema"]["exclusiveMaximum"].as_f64()
        ),
        (Some(0.0), Some(1.0))
    );
    for (t, status) in [("0", 422), ("1", 422), ("0.5", 200)] {
        let res = app
            .get(
                &format!(
                    "/v1/pools/{}/health?target={t}",
                    pool["id"].as_str().unwrap()
                ),
                &app.api_key,
            )
            .await;
        assert_eq!(res.status().as_u16(), status, "target={t}");
    }

    // The cost settings' answer has the `timezone` its schema names.
    let res = app
        .get(&format!("/v1/properties/{pid}/cost-settings"), &app.api_key)
        .await;
    let settings: Value = res.json().await.unwrap();
    assert_eq!(settings["timezone"], "America/New_York");
    let view = schema("CostSettingsView");
    let properties: BTreeSet<&String> = view["properties"].as_object().unwrap().keys().collect();
    let sent: BTreeSet<&String> = settings.as_object().unwrap().keys().collect();
    assert_eq!(properties, sent);

    // Statuses are an enum, spelled as documented.
    let status = param("/v1/properties/{id}/calls", "get", "status");
    let values = resolve(&doc, &status["schema"])["enum"].clone();
    assert!(
        values.as_array().unwrap().contains(&json!("no-answer")),
        "{values}"
    );
    let res = app
        .get(
            &format!("/v1/properties/{pid}/calls?status=NO_ANSWER"),
            &app.api_key,
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // Reports answer JSON or CSV, each with its schema.
    let content = &doc["paths"]["/v1/properties/{id}/reports/attribution"]["get"]["responses"]["200"]
        ["content"];
    assert!(
        content["application/json"]["schema"]["$ref"].is_string(),
        "{content}"
    );
    assert!(content["text/csv"].is_object(), "{content}");
    // Twilio's answers are TwiML, as sent.
    let voice = &doc["paths"]["/v1/telephony/twilio/voice"]["post"];
    assert!(voice["requestBody"]["content"]["application/x-www-form-urlencoded"].is_object());
    assert!(voice["responses"]["200"]["content"]["application/xml"].is_object());
}
