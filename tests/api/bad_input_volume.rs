//! Bad input at volume (issue 8): thousands of malformed, mistyped, truncated and oversized
//! bodies sent at once to every public write endpoint. Each gets the API's JSON
//! `{"error":{"code","message"}}` with a 4xx (413 when too large), never a 5xx; the server keeps
//! serving good requests afterwards and loses nothing it had accepted. Then a flood of new
//! sessions from one address: the per-address limit holds, the pool stays free for everyone
//! else, and every answer is one the snippet can use.

use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchboard::telephony::{generic, twilio_signature};

use crate::calls::{PUBLIC, TOKEN, attributed, attributed_from, dial, property};
use crate::helpers::{Backend, TestApp, Visit, spawn_app_with};
use crate::with_twilio_on_both_backends;

with_twilio_on_both_backends!(
    malformed_and_oversized_bodies_at_volume_are_refused_and_lose_nothing
);

/// How many requests are in flight at once.
const CONCURRENCY: usize = 32;

/// How an endpoint is reached.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// JSON, with the account's API key.
    Api,
    /// JSON from the snippet (no key).
    Snippet,
    /// Twilio's signed form.
    Twilio,
    /// The generic provider endpoint's signed JSON.
    Generic,
}

/// One bad request: where, with which content type and body, and whether Twilio's signature
/// over whatever the body reads as is attached (so the handler itself sees the junk).
#[derive(Clone)]
struct Bad {
    method: Method,
    path: String,
    kind: Kind,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    signed: bool,
}

/// A small deterministic generator, so a failure can be replayed.
struct Junk(u64);

impl Junk {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    /// A JSON document cut at a random byte, so it ends mid-token or mid-character.
    fn truncated(&mut self, doc: &str) -> Vec<u8> {
        let cut = (self.next() as usize) % doc.len().max(1);
        doc.as_bytes()[..cut].to_vec()
    }
}

/// Bodies no JSON endpoint accepts.
fn malformed_json(junk: &mut Junk) -> Vec<Vec<u8>> {
    let doc = r#"{"name":"Café Ünïcode","domains":["acme.example"],"default_number":"+14155550100","rows":[{"date":"2026-11-01","amount":1.5}]}"#;
    let mut bodies: Vec<Vec<u8>> = [
        "",
        "   \n",
        "{",
        "{\"name\": ",
        "[",
        "}",
        "nul",
        "{\"a\":1,}",
        "{'a':1}",
        "{\"a\" 1}",
        "{\"a\":\"\\uD800\"",
        "{\"a\":1e99999}",
        "\u{feff}{}",
        "{\"a\":\"tab\there\"}",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    // Nesting far past serde_json's recursion limit.
    bodies.push("[".repeat(100_000).into_bytes());
    bodies.push(format!("{}1{}", "{\"a\":".repeat(5_000), "}".repeat(5_000)).into_bytes());
    // UTF-8 cut inside a character, and bytes that are never UTF-8.
    bodies.push(b"{\"name\":\"caf\xc3\"}".to_vec());
    bodies.push(b"{\"name\":\"\xe2\x82\"}".to_vec());
    bodies.push(b"{\"name\":\"\xff\xfe\"}".to_vec());
    for _ in 0..40 {
        bodies.push(junk.truncated(doc));
    }
    for len in [1, 7, 64, 1000] {
        bodies.push(junk.bytes(len));
    }
    bodies
}

/// The key the property's snippet sends.
async fn public_key(app: &TestApp, property_id: &str) -> String {
    let property = app
        .get(&format!("/v1/properties/{property_id}"), &app.api_key)
        .await;
    property.json::<Value>().await.unwrap()["public_key"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn too_large(limit: usize) -> Vec<u8> {
    // Valid JSON text all the way, so only its size is wrong.
    format!("{{\"name\":\"{}\"}}", "x".repeat(limit)).into_bytes()
}

async fn send(app: &TestApp, secret: &str, bad: &Bad) -> reqwest::Result<reqwest::Response> {
    let mut req = app
        .client
        .request(bad.method.clone(), app.url(&bad.path))
        .body(bad.body.clone());
    if let Some(ct) = bad.content_type {
        req = req.header("content-type", ct);
    }
    match bad.kind {
        Kind::Api => req = req.bearer_auth(&app.api_key),
        Kind::Snippet => req = req.header("origin", "https://www.acme.example"),
        Kind::Twilio if bad.signed => {
            // Signed over what the form reads as: the handler, not the signature check,
            // meets the junk.
            let params: Vec<(String, String)> = url::form_urlencoded::parse(&bad.body)
                .into_owned()
                .collect();
            let signature = twilio_signature::compute(
                TOKEN.as_bytes(),
                &format!("{PUBLIC}{}", bad.path),
                &params,
            );
            req = req.header("x-twilio-signature", signature);
        }
        Kind::Twilio => req = req.header("x-twilio-signature", "bm90IGEgc2lnbmF0dXJl"),
        Kind::Generic if bad.signed => {
            req = req.header(
                "x-switchboard-signature",
                generic::sign(secret.as_bytes(), &bad.body),
            );
        }
        Kind::Generic => {}
    }
    req.send().await
}

/// Checks one answer: a JSON error with a 4xx, 413 when `oversized`. A signed Twilio form that
/// reads as junk may also get TwiML (a number not in service, or a callback with nothing new).
async fn check(bad: &Bad, oversized: bool, res: reqwest::Result<reqwest::Response>) {
    let what = format!(
        "{} {} ({:?}, {} bytes: {:?})",
        bad.method,
        bad.path,
        bad.content_type,
        bad.body.len(),
        String::from_utf8_lossy(&bad.body[..bad.body.len().min(60)])
    );
    let res = res.unwrap_or_else(|e| panic!("{what}: no answer: {e}"));
    let status = res.status();
    let is_twiml = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/xml"));
    let text = res.text().await.unwrap_or_default();
    assert!(!status.is_server_error(), "{what}: {status} {text}");
    if bad.kind == Kind::Twilio && bad.signed && status == StatusCode::OK && is_twiml {
        assert!(text.starts_with("<?xml"), "{what}: {text}");
        return;
    }
    assert!(status.is_client_error(), "{what}: {status} {text}");
    if oversized {
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{what}: {text}");
    }
    let body: Value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}: not JSON: {text}"));
    assert!(
        body["error"]["code"].is_string() && body["error"]["message"].is_string(),
        "{what}: {body}"
    );
}

async fn malformed_and_oversized_bodies_at_volume_are_refused_and_lose_nothing(app: TestApp) {
    // What is accepted before the flood: a pool, a visitor holding a number, a call to it, the
    // generic endpoint's call.
    let pid = property(&app).await;
    let pool = app
        .pool_with(
            &pid,
            json!({"name": "Web", "kind": "session", "lease_minutes": 30,
                   "numbers": ["+14155550201", "+14155550202", "+14155550203"]}),
        )
        .await;
    let pool_id = pool["id"].as_str().unwrap().to_owned();
    let key = public_key(&app, &pid).await;
    let visitor = app.new_visitor(&key, "https://www.acme.example/").await;
    let session = visitor["session"].as_str().unwrap().to_owned();
    let number = visitor["number"].as_str().unwrap().to_owned();
    dial(&app, "CAaccepted", "+14155559999", &number).await;
    let secret = app
        .post(
            "/v1/account/telephony/calls-secret",
            &app.api_key,
            &json!({}),
        )
        .await
        .json::<Value>()
        .await
        .unwrap()["calls_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let started = json!({"event": "call.started", "provider": "telnyx", "call_id": "v3:accepted",
                         "to": "+14155550202", "from": "+14155559998"})
    .to_string();
    let res = app
        .client
        .post(app.url("/v1/telephony/calls"))
        .header("content-type", "application/json")
        .header(
            "x-switchboard-signature",
            generic::sign(secret.as_bytes(), started.as_bytes()),
        )
        .body(started)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let call_id = attributed(&app, "CAaccepted").await.id;

    // Every public write endpoint, with what it is reached by.
    let json_endpoints: Vec<(Method, String, Kind)> = vec![
        (Method::POST, "/v1/properties".into(), Kind::Api),
        (Method::PATCH, format!("/v1/properties/{pid}"), Kind::Api),
        (
            Method::POST,
            format!("/v1/properties/{pid}/pools"),
            Kind::Api,
        ),
        (
            Method::POST,
            format!("/v1/pools/{pool_id}/numbers"),
            Kind::Api,
        ),
        (
            Method::POST,
            format!("/v1/properties/{pid}/costs"),
            Kind::Api,
        ),
        (
            Method::PUT,
            format!("/v1/properties/{pid}/cost-settings"),
            Kind::Api,
        ),
        (
            Method::PUT,
            format!("/v1/properties/{pid}/alerts"),
            Kind::Api,
        ),
        (Method::PUT, "/v1/account/telephony".into(), Kind::Api),
        (Method::POST, "/v1/webhooks".into(), Kind::Api),
        (
            Method::POST,
            format!("/v1/calls/{call_id}/conversion"),
            Kind::Api,
        ),
        (Method::PATCH, format!("/v1/calls/{call_id}"), Kind::Api),
        (
            Method::POST,
            format!("/v1/properties/{pid}/conversions"),
            Kind::Api,
        ),
        (Method::POST, "/v1/dni/session".into(), Kind::Snippet),
        (Method::POST, "/v1/telephony/calls".into(), Kind::Generic),
    ];
    let twilio_endpoints = ["voice", "status", "dial", "recording", "whisper"]
        .map(|hook| format!("/v1/telephony/twilio/{hook}"));
    let mut junk = Junk(0x0005_EED0_FBAD_1DEA);
    let bodies = malformed_json(&mut junk);
    let mut bad = Vec::new();
    for (method, path, kind) in &json_endpoints {
        let signed_too: &[bool] = if *kind == Kind::Generic {
            &[false, true]
        } else {
            &[false]
        };
        for &signed in signed_too {
            for body in &bodies {
                for content_type in [
                    Some("application/json"),
                    Some("text/plain;charset=UTF-8"),
                    None,
                ] {
                    bad.push(Bad {
                        method: method.clone(),
                        path: path.clone(),
                        kind: *kind,
                        content_type,
                        body: body.clone(),
                        signed,
                    });
                }
            }
        }
        // Well-formed bodies of the wrong kind. (The costs upload reads anything but CSV as
        // JSON, so it answers these with 400 rather than 415.)
        for (content_type, body) in [
            (
                "application/x-www-form-urlencoded",
                &b"name=Acme&default_number=%2B1"[..],
            ),
            ("application/xml", b"<property><name>Acme</name></property>"),
            (
                "multipart/form-data; boundary=x",
                b"--x\r\n\r\nAcme\r\n--x--",
            ),
            ("image/png", b"\x89PNG\r\n\x1a\n"),
        ] {
            bad.push(Bad {
                method: method.clone(),
                path: path.clone(),
                kind: *kind,
                content_type: Some(content_type),
                body: body.to_vec(),
                signed: false,
            });
        }
    }
    // CSV that is not the cost sheet.
    for body in [
        &b""[..],
        b"date,source,medium,campaign,amount\n",
        b"date,source,medium,campaign,amount\n2026-13-45,g,cpc,x,1\n",
        b"date,source,medium,campaign,amount\n2026-11-01,g,cpc,x,NaN\n",
        b"date,source\n\"unterminated",
        b"date,source,medium,campaign,amount\n2026-11-01,\xff\xfe,cpc,x,1\n",
        b"\x00\x01\x02",
    ] {
        bad.push(Bad {
            method: Method::POST,
            path: format!("/v1/properties/{pid}/costs"),
            kind: Kind::Api,
            content_type: Some("text/csv"),
            body: body.to_vec(),
            signed: false,
        });
    }
    // Twilio's forms: junk, truncated UTF-8 and JSON, unsigned, forged and correctly signed.
    let mut forms: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"&&&===&".to_vec(),
        b"To=%E2%82&CallSid=CA%".to_vec(),
        b"To=\xe2\x82&CallSid=\xff".to_vec(),
        b"CallSid=CAjunk&To=not-a-number&From=%00%01".to_vec(),
        b"CallSid=CAjunk&CallStatus=teleported&CallDuration=-99999999999999999999".to_vec(),
        b"CallSid=CAjunk&DialCallStatus=%F0%9F%93%9E&RecordingUrl=javascript:alert(1)".to_vec(),
        b"{\"CallSid\":\"CA1\",\"To\":\"+14155550201\"}".to_vec(),
    ];
    for _ in 0..30 {
        let len = (junk.next() % 300) as usize;
        forms.push(junk.bytes(len));
    }
    for path in &twilio_endpoints {
        for body in &forms {
            for signed in [false, true] {
                bad.push(Bad {
                    method: Method::POST,
                    path: path.clone(),
                    kind: Kind::Twilio,
                    content_type: Some("application/x-www-form-urlencoded"),
                    body: body.clone(),
                    signed,
                });
            }
        }
    }
    let tried = bad.len();
    futures_util::stream::iter(bad)
        .for_each_concurrent(CONCURRENCY, |b| {
            let (app, secret) = (&app, &secret);
            async move { check(&b, false, send(app, secret, &b).await).await }
        })
        .await;

    // Oversized: just past each endpoint's limit (64 KiB by default; 4 MiB for cost uploads),
    // a few at once, each refused with a JSON 413.
    let mut oversized = Vec::new();
    for (method, path, kind) in &json_endpoints {
        let limit = if path.ends_with("/costs") {
            4 << 20
        } else {
            64 * 1024
        };
        oversized.push(Bad {
            method: method.clone(),
            path: path.clone(),
            kind: *kind,
            content_type: Some("application/json"),
            body: too_large(limit),
            signed: true,
        });
    }
    for path in &twilio_endpoints {
        let mut form = b"CallSid=CA1&To=%2B14155550201&CallerName=".to_vec();
        form.resize(64 * 1024 + 1, b'x');
        for signed in [false, true] {
            oversized.push(Bad {
                method: Method::POST,
                path: path.clone(),
                kind: Kind::Twilio,
                content_type: Some("application/x-www-form-urlencoded"),
                body: form.clone(),
                signed,
            });
        }
    }
    let tried = tried + oversized.len();
    futures_util::stream::iter(oversized)
        .for_each_concurrent(4, |b| {
            let (app, secret) = (&app, &secret);
            async move { check(&b, true, send(app, secret, &b).await).await }
        })
        .await;
    eprintln!("{tried} bad requests refused");

    // Still serving, and nothing accepted was lost.
    let ping = app
        .client
        .get(app.url("/health/ping"))
        .send()
        .await
        .unwrap();
    assert_eq!(ping.status(), StatusCode::OK);
    let again = app.returning_visitor(&key, &session).await;
    assert_eq!(
        (again["session"].as_str(), again["number"].as_str()),
        (Some(session.as_str()), Some(number.as_str()))
    );
    let newcomer = app.new_visitor(&key, "https://www.acme.example/").await;
    assert!(newcomer["number"].is_string(), "{newcomer}");
    dial(&app, "CAafter", "+14155559997", &number).await;
    attributed(&app, "CAafter").await;
    let kept = attributed_from(&app, "telnyx", "v3:accepted").await;
    assert_eq!(kept.call.tracking_number, "+14155550202");
    let first = attributed(&app, "CAaccepted").await;
    assert_eq!(
        first.attribution.unwrap().session_id.as_deref(),
        Some(session.as_str())
    );
    let calls: Value = app
        .get(&format!("/v1/properties/{pid}/calls"), &app.api_key)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        calls["calls"].as_array().map(Vec::len),
        Some(3),
        "the three good calls, and none of the junk: {calls}"
    );
    let properties = app.storage.list_properties(&app.account_id).await.unwrap();
    assert_eq!(properties.len(), 1, "no junk property");
    let pools = app.storage.list_pools(&app.account_id, &pid).await.unwrap();
    assert_eq!(pools.len(), 1, "no junk pool");
}

/// One address opening sessions as fast as it can: it gets its quota of leases and then the
/// default number (a 200 the snippet uses, never an error), and the pool stays there for
/// everyone else.
#[tokio::test]
async fn a_flood_of_new_sessions_from_one_address_cannot_drain_the_pool() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) = spawn_app_with(
            backend,
            &[
                ("new_sessions_per_ip_per_minute", "20"),
                ("trusted_proxies", "127.0.0.1/32"),
            ],
        )
        .await
        else {
            continue;
        };
        let pid = property(&app).await;
        let pool: Vec<String> = (0..40)
            .map(|i| format!("+1415555{:04}", 3000 + i))
            .collect();
        app.pool_with(
            &pid,
            json!({"name": "Web", "kind": "session", "lease_minutes": 30, "numbers": pool}),
        )
        .await;
        let key = public_key(&app, &pid).await;

        const FLOOD: usize = 1_000;
        let flood_started = std::time::Instant::now();
        let answers: Vec<(StatusCode, Value)> = futures_util::stream::iter(0..FLOOD)
            .map(|_| {
                let (app, key) = (&app, &key);
                async move {
                    let (status, _, body) = app
                        .visit(&Visit {
                            forwarded_for: Some("198.51.100.7"),
                            ..Visit::new(key)
                        })
                        .await;
                    (status, body)
                }
            })
            .buffer_unordered(64)
            .collect()
            .await;
        let mut leased = Vec::new();
        for (status, body) in &answers {
            // What the snippet needs to swap numbers: a 200 with a number and the list to replace.
            assert_eq!(*status, StatusCode::OK, "{body}");
            assert!(
                body["number"].is_string() && body["replace"].is_array(),
                "{body}"
            );
            if body["number"] != "+14155550100" {
                assert!(body["session"].is_string(), "{body}");
                leased.push(body["number"].as_str().unwrap().to_owned());
            } else {
                assert!(body["session"].is_null(), "{body}");
            }
        }
        // The limit is a rate (20 a minute, in a burst of 20): a slow flood earns one more
        // every 3 s of real time it takes.
        let earned = 20 + (flood_started.elapsed().as_secs_f64() / 3.0).ceil() as usize;
        assert!(
            (20..=earned).contains(&leased.len()),
            "{backend:?}: {} leases, where the address's quota is {earned}",
            leased.len()
        );
        let quota = leased.len();
        leased.sort();
        leased.dedup();
        assert_eq!(leased.len(), quota, "each lease its own number");

        // Everyone else still gets a number of their own from the pool.
        let mut others = Vec::new();
        for i in 0..10 {
            let ip = format!("203.0.113.{}", 10 + i);
            let (status, _, body) = app
                .visit(&Visit {
                    forwarded_for: Some(&ip),
                    ..Visit::new(&key)
                })
                .await;
            assert_eq!(status, StatusCode::OK);
            let n = body["number"].as_str().unwrap().to_owned();
            assert!(
                n != "+14155550100" && !leased.contains(&n),
                "{backend:?}: visitor {i} got {n}"
            );
            others.push(n);
        }
        others.sort();
        others.dedup();
        assert_eq!(others.len(), 10);
    }
}
