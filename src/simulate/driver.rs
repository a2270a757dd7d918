//! One simulated run: the real service in this process on a hand-driven clock, fed by a
//! discrete-event loop. Each event sets the clock to its simulated time and then makes the HTTP
//! request the snippet or Twilio would make at that moment, so hours of traffic pass in seconds.
//!
//! Background tasks run on wall-time timers; none of them decides an attribution on its own
//! timing. The ledger writes behind the requests, but the attribution pass flushes it first
//! (and so does pool health); lease expiry and attribution read the injected clock; the call
//! replayer is woken through its hook at each call's check (as a webhook would wake it) and
//! attributes within a few wall milliseconds, while simulated time stands still.

use std::time::Instant;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use serde_json::{Value, json};

use anyhow::Context;

use super::queue::EventQueue;
use super::score::{Observed, Score, Truth};
use super::service::{Advice, Service, Target};
use super::traffic::{CallTiming, Ending, HOUR_MS, SECOND_MS, SITE_ORIGIN, TrafficModel, Visitor};
use crate::config::Settings;
use crate::time::{Millis, to_datetime};

/// What the pool does when every number is leased (the pool's `exhaustion`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Exhaustion {
    Share,
    Overflow,
    Default,
}

impl Exhaustion {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Exhaustion::Share => "share",
            Exhaustion::Overflow => "overflow",
            Exhaustion::Default => "default",
        }
    }
}

/// One run's set-up: the traffic, and the pool that serves it.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub traffic: TrafficModel,
    pub pool_size: usize,
    pub lease_minutes: i64,
    pub exhaustion: Exhaustion,
    pub seed: u64,
    /// The exhaustion chance the pool advisor sizes for (its `target`).
    pub advisor_target: f64,
}

/// The simulated clock starts at this midnight (UTC, a Monday; the property's zone is UTC).
pub const START_MS: Millis = 1_772_409_600_000; // 2026-03-02T00:00:00Z

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub seed: u64,
    pub pool_size: usize,
    pub lease_minutes: i64,
    pub exhaustion: Exhaustion,
    pub database: &'static str,
    pub lease_store: &'static str,
    pub visitors: usize,
    /// Visits (first ones and returns): each needs a number.
    pub visits: usize,
    /// Exhaustion events per visit: what the advisor's target bounds (about 1% at its size).
    pub exhaustion_per_visit: f64,
    pub requests: Requests,
    pub simulated_hours: f64,
    pub wall_seconds: f64,
    pub score: Score,
    /// Calls whose attribution changed between its check (seconds after the call, as in
    /// production) and the end of the run; attribution should be a function of the past.
    pub changed_after_check: u64,
    /// The advisor over the arrival period (the pool's recommended size).
    pub advice: Advice,
    /// Pool health over the whole run: exhaustion events and the peak of concurrent leases.
    pub exhaustion_events: i64,
    pub peak_concurrent_leases: u64,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Requests {
    pub page_views: u64,
    pub renewals: u64,
    pub twilio_webhooks: u64,
}

enum Event {
    View {
        visitor: usize,
        visit: usize,
        page: usize,
    },
    Renew {
        visitor: usize,
        generation: u64,
    },
    Call {
        visitor: usize,
        call: usize,
    },
    Twilio {
        call: usize,
        step: Step,
    },
    Check {
        call: usize,
    },
    Advice,
}

/// Twilio's requests after the voice webhook, in the order it sends them.
#[derive(Debug, Clone, Copy)]
enum Step {
    LegInitiated,
    LegRinging,
    LegAnswered,
    LegEnded,
    DialAction,
    ParentCompleted,
    Recording,
}

/// What a browser tab keeps between requests (the snippet's state and storage).
#[derive(Default)]
struct Browser {
    session: Option<String>,
    /// The number on the page now, and the session whose answer put it there.
    shown: Option<(String, String)>,
    lease_ms: Millis,
    answered_at: Millis,
    /// Answers so far: a renewal timer set by an older answer is stale.
    answers: u64,
    /// The current page is open until then (the visit's end).
    open_until: Millis,
    page: usize,
    visit: usize,
}

/// A placed call and what Twilio was told to do with it.
struct PlacedCall {
    truth: Truth,
    visitor: usize,
    sid: String,
    leg_sid: String,
    from: String,
    to: String,
    started: Millis,
    ring_s: i64,
    talk_s: Option<i64>,
    ending: Ending,
    /// Callback URLs from the TwiML answer.
    dial_action: String,
    status_callback: String,
    recording_callback: Option<String>,
    seq: u32,
    checked: Option<Observed>,
}

/// Runs one simulation and scores it.
pub async fn run(settings: &Settings, config: &SimConfig) -> anyhow::Result<RunReport> {
    let wall = Instant::now();
    let service = Service::start(settings, config).await?;
    let visitors = config.traffic.visitors(config.seed, START_MS);
    let mut sim = Simulation::new(&service.target, &visitors, config.seed, START_MS);
    sim.scorer = Some((&service, config));
    let outcome = sim.run().await;
    let result = match outcome {
        Ok(()) => sim.finish(&service, config, wall).await,
        Err(e) => Err(e),
    };
    service.stop().await;
    result
}

/// What `play` did: its requests and every call it placed.
#[derive(Debug, Clone, Default)]
pub struct Played {
    pub requests: Requests,
    pub calls: Vec<PlayedCall>,
}

#[derive(Debug, Clone)]
pub struct PlayedCall {
    /// Twilio's `CallSid` (the calls API's `provider_call_id`).
    pub sid: String,
    /// The caller, an index into the visitors played.
    pub visitor: usize,
    pub timing: CallTiming,
    pub ending: Ending,
    pub started: Millis,
    pub talk_s: Option<i64>,
    /// Whether the service forwarded it (it dialled a tracking number).
    pub routed: bool,
}

/// Plays visitors against a running service, without scoring: each page view and call at its
/// time on `target`'s clock, from `start` until `end` (nothing after it; a call that would not
/// have ended by then is not placed). Callers without a visit dial `offline_number`.
pub async fn play(
    target: &Target,
    visitors: &[Visitor],
    seed: u64,
    (start, end): (Millis, Millis),
    offline_number: Option<&str>,
) -> anyhow::Result<Played> {
    let mut sim = Simulation::new(target, visitors, seed, start);
    sim.end = end;
    sim.offline_number = offline_number.map(str::to_owned);
    sim.run().await?;
    Ok(Played {
        requests: sim.requests,
        calls: sim
            .calls
            .into_iter()
            .map(|c| PlayedCall {
                routed: !c.dial_action.is_empty(),
                sid: c.sid,
                visitor: c.visitor,
                timing: c.truth.timing,
                ending: c.ending,
                started: c.started,
                talk_s: c.talk_s,
            })
            .collect(),
    })
}

struct Simulation<'a> {
    target: &'a Target,
    /// The simulator's own work: each call's attribution checked as production would see it,
    /// and the pool advisor asked (`play` goes without).
    scorer: Option<(&'a Service, &'a SimConfig)>,
    visitors: &'a [Visitor],
    browsers: Vec<Browser>,
    calls: Vec<PlacedCall>,
    queue: EventQueue<Event>,
    rng: StdRng,
    requests: Requests,
    advice: Option<Advice>,
    now: Millis,
    /// Nothing is played after this time.
    end: Millis,
    /// What callers without a visit dial (a printed number).
    offline_number: Option<String>,
}

impl<'a> Simulation<'a> {
    fn new(target: &'a Target, visitors: &'a [Visitor], seed: u64, start: Millis) -> Self {
        Self {
            target,
            scorer: None,
            visitors,
            browsers: (0..visitors.len()).map(|_| Browser::default()).collect(),
            calls: Vec::new(),
            queue: EventQueue::default(),
            rng: StdRng::seed_from_u64(seed ^ 0x5eed_ca11),
            requests: Requests::default(),
            advice: None,
            now: start,
            end: Millis::MAX,
            offline_number: None,
        }
    }

    async fn run(&mut self) -> anyhow::Result<()> {
        for (i, v) in self.visitors.iter().enumerate() {
            for (n, visit) in v.visits.iter().enumerate() {
                for (p, view) in visit.views.iter().enumerate() {
                    self.queue.push(
                        view.at,
                        Event::View {
                            visitor: i,
                            visit: n,
                            page: p,
                        },
                    );
                }
            }
            for (c, call) in v.calls.iter().enumerate() {
                self.queue.push(
                    call.at,
                    Event::Call {
                        visitor: i,
                        call: c,
                    },
                );
            }
        }
        if let Some((_, config)) = self.scorer {
            let arrivals_end = START_MS + Millis::from(config.traffic.hours) * HOUR_MS;
            self.queue.push(arrivals_end, Event::Advice);
        }
        while let Some((at, event)) = self.queue.pop() {
            if at > self.end {
                break;
            }
            self.now = at;
            self.target.clock.set_ms(at);
            match event {
                Event::View {
                    visitor,
                    visit,
                    page,
                } => self.view(visitor, visit, page).await?,
                Event::Renew {
                    visitor,
                    generation,
                } => self.renew(visitor, generation).await?,
                Event::Call { visitor, call } => self.call(visitor, call).await?,
                Event::Twilio { call, step } => self.twilio_step(call, step).await?,
                Event::Check { call } => {
                    let Some((service, _)) = self.scorer else {
                        continue;
                    };
                    let c = &self.calls[call];
                    let seen = service.attributed(&c.sid, c.started).await?;
                    self.calls[call].checked = Some(seen);
                }
                Event::Advice => {
                    let Some((service, config)) = self.scorer else {
                        continue;
                    };
                    let window = Millis::from(config.traffic.hours.clamp(1, 720));
                    self.advice = Some(service.health(window, config.advisor_target).await?);
                }
            }
        }
        Ok(())
    }

    async fn view(&mut self, visitor: usize, visit: usize, page: usize) -> anyhow::Result<()> {
        let v = &self.visitors[visitor];
        let b = &mut self.browsers[visitor];
        b.visit = visit;
        b.page = page;
        b.open_until = v.visits[visit].leave_at;
        self.requests.page_views += 1;
        self.post_view(visitor, false).await
    }

    /// The snippet's renewal timer: set at half the lease after each answer; it renews while the
    /// page is open (and visible) and 40% of the lease has passed.
    async fn renew(&mut self, visitor: usize, generation: u64) -> anyhow::Result<()> {
        let b = &self.browsers[visitor];
        let due = b.lease_ms > 0
            && generation == b.answers
            && self.now < b.open_until
            && (self.now - b.answered_at) as f64 > b.lease_ms as f64 * 0.4;
        if due {
            self.requests.renewals += 1;
            self.post_view(visitor, true).await?;
        }
        Ok(())
    }

    /// `POST /v1/dni/session` with the body and headers the snippet's `fetch` sends.
    async fn post_view(&mut self, visitor: usize, renewal: bool) -> anyhow::Result<()> {
        let v = &self.visitors[visitor];
        let b = &self.browsers[visitor];
        let view = &v.visits[b.visit].views[b.page];
        let mut body = json!({
            "key": self.target.public_key,
            "session": b.session,
            "url": view.url,
            "referrer": view.referrer.as_deref().unwrap_or(""),
        });
        if renewal {
            body["renew"] = json!(true);
        }
        if let Some(ga) = &v.ga_client_id {
            body["ga_client_id"] = json!(ga);
        }
        let response = self
            .target
            .client
            .post(format!("{}/v1/dni/session", self.target.base))
            .header("content-type", "text/plain;charset=UTF-8")
            .header("origin", SITE_ORIGIN)
            .header("referer", &view.url)
            .header("user-agent", v.user_agent)
            .header("x-forwarded-for", v.ip.to_string())
            .body(body.to_string())
            .send()
            .await
            .context("POST /v1/dni/session")?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(
            status.is_success(),
            "a page view answered {status}: {answer}"
        );
        // As the snippet: only a well-formed answer changes anything.
        let (Some(number), Some(session)) = (answer["number"].as_str(), answer["session"].as_str())
        else {
            return Ok(());
        };
        let b = &mut self.browsers[visitor];
        b.session = Some(session.to_owned());
        b.shown = Some((number.to_owned(), session.to_owned()));
        b.lease_ms = answer["expires_in"].as_i64().unwrap_or(0) * 1000;
        b.answered_at = self.now;
        b.answers += 1;
        if b.lease_ms > 0 {
            let generation = b.answers;
            self.queue.push(
                self.now + b.lease_ms / 2,
                Event::Renew {
                    visitor,
                    generation,
                },
            );
        }
        Ok(())
    }

    /// The caller dials the number their page showed (the last one, for a saved number), or,
    /// without a visit, the printed number.
    async fn call(&mut self, visitor: usize, index: usize) -> anyhow::Result<()> {
        let v = &self.visitors[visitor];
        let planned = &v.calls[index];
        let b = &self.browsers[visitor];
        let (number, session) = match (&b.shown, &self.offline_number) {
            (Some(shown), _) => shown.clone(),
            (None, Some(printed)) if v.visits.is_empty() => (printed.clone(), String::new()),
            _ => return Ok(()),
        };
        // Its callbacks would come after the end: not placed, rather than left ringing.
        let lasts = (planned.ring_s + planned.talk_s.unwrap_or(0) + 5) * SECOND_MS;
        if self.now.saturating_add(lasts) > self.end {
            return Ok(());
        }
        let lease_live = b.lease_ms > 0 && self.now < b.answered_at + b.lease_ms;
        let sid = self.sid();
        let leg_sid = self.sid();
        let params = vec![
            ("AccountSid", ACCOUNT_SID.to_owned()),
            ("ApiVersion", "2010-04-01".to_owned()),
            ("CallSid", sid.clone()),
            ("CallStatus", "ringing".to_owned()),
            ("Called", number.clone()),
            ("Caller", v.phone.clone()),
            ("Direction", "inbound".to_owned()),
            ("From", v.phone.clone()),
            ("FromCity", v.city.0.to_owned()),
            ("FromCountry", "US".to_owned()),
            ("FromState", v.city.1.to_owned()),
            ("To", number.clone()),
            ("ToCountry", "US".to_owned()),
        ];
        let url = format!("{}/v1/telephony/twilio/voice", self.target.base);
        let twiml = self.target.twilio(&url, &params).await?;
        self.requests.twilio_webhooks += 1;
        let index = self.calls.len();
        self.calls.push(PlacedCall {
            truth: Truth {
                call_sid: sid.clone(),
                timing: planned.timing,
                session,
                channel: v.source.channel(),
                lease_live,
            },
            visitor,
            sid,
            leg_sid,
            from: v.phone.clone(),
            to: number,
            started: self.now,
            ring_s: planned.ring_s,
            talk_s: planned.talk_s,
            ending: planned.ending,
            dial_action: attribute(&twiml, "action").unwrap_or_default(),
            status_callback: attribute(&twiml, "statusCallback").unwrap_or_default(),
            recording_callback: attribute(&twiml, "recordingStatusCallback"),
            seq: 0,
            checked: None,
        });
        let c = &self.calls[index];
        if c.dial_action.is_empty() {
            // Not forwarded (the number is not a tracking number, e.g. the property's default
            // shown when a pool ran out): the service records no call.
            return Ok(());
        }
        // Production attributes a call within a second or two of its arrival: check it then,
        // before simulated time moves on.
        if self.scorer.is_some() {
            self.queue
                .push(self.now + 10 * SECOND_MS, Event::Check { call: index });
        }
        let ring = c.ring_s * SECOND_MS;
        let ended = self.now + ring + c.talk_s.unwrap_or(0) * SECOND_MS;
        let mut steps = vec![(self.now + 500, Step::LegInitiated)];
        // A busy line never rings.
        if c.ending != Ending::Busy {
            steps.push((self.now + SECOND_MS, Step::LegRinging));
        }
        if c.talk_s.is_some() {
            steps.push((self.now + ring, Step::LegAnswered));
            if c.recording_callback.is_some() {
                steps.push((ended + 3 * SECOND_MS, Step::Recording));
            }
        }
        steps.extend([
            (ended, Step::LegEnded),
            (ended + 200, Step::DialAction),
            (ended + 400, Step::ParentCompleted),
        ]);
        for (at, step) in steps {
            self.queue.push(at, Event::Twilio { call: index, step });
        }
        Ok(())
    }

    /// One of Twilio's callbacks about a call in progress, signed as Twilio signs it.
    async fn twilio_step(&mut self, index: usize, step: Step) -> anyhow::Result<()> {
        let c = &mut self.calls[index];
        let timestamp = to_datetime(self.now)
            .format("%a, %d %b %Y %H:%M:%S +0000")
            .to_string();
        let dial_status = leg_status(c.ending);
        let total_s = (self.now - c.started) / SECOND_MS;
        let leg = |status: &str, seq: u32| {
            vec![
                ("AccountSid", ACCOUNT_SID.to_owned()),
                ("CallSid", c.leg_sid.clone()),
                ("ParentCallSid", c.sid.clone()),
                ("CallStatus", status.to_owned()),
                ("Direction", "outbound-dial".to_owned()),
                ("From", c.from.clone()),
                ("To", self.target.forward_to.clone()),
                ("SequenceNumber", seq.to_string()),
                ("Timestamp", timestamp.clone()),
            ]
        };
        let (url, mut params) = match step {
            Step::LegInitiated => (c.status_callback.clone(), leg("initiated", c.seq)),
            Step::LegRinging => (c.status_callback.clone(), leg("ringing", c.seq)),
            Step::LegAnswered => (c.status_callback.clone(), leg("in-progress", c.seq)),
            Step::LegEnded => {
                let mut p = leg(dial_status, c.seq);
                p.push(("CallDuration", c.talk_s.unwrap_or(0).to_string()));
                (c.status_callback.clone(), p)
            }
            Step::DialAction => (
                c.dial_action.clone(),
                vec![
                    ("AccountSid", ACCOUNT_SID.to_owned()),
                    ("CallSid", c.sid.clone()),
                    ("CallStatus", "in-progress".to_owned()),
                    ("DialCallSid", c.leg_sid.clone()),
                    ("DialCallStatus", dial_status.to_owned()),
                    ("DialCallDuration", c.talk_s.unwrap_or(0).to_string()),
                    ("From", c.from.clone()),
                    ("To", c.to.clone()),
                ],
            ),
            Step::ParentCompleted => (
                format!("{}/v1/telephony/twilio/status", self.target.base),
                vec![
                    ("AccountSid", ACCOUNT_SID.to_owned()),
                    ("CallSid", c.sid.clone()),
                    ("CallStatus", "completed".to_owned()),
                    ("CallDuration", total_s.to_string()),
                    ("Direction", "inbound".to_owned()),
                    ("From", c.from.clone()),
                    ("To", c.to.clone()),
                    ("Timestamp", timestamp.clone()),
                ],
            ),
            Step::Recording => (
                c.recording_callback.clone().unwrap_or_default(),
                vec![
                    ("AccountSid", ACCOUNT_SID.to_owned()),
                    ("CallSid", c.sid.clone()),
                    ("RecordingSid", format!("RE{}", &c.sid[2..])),
                    (
                        "RecordingUrl",
                        format!(
                            "https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/RE{}",
                            &c.sid[2..]
                        ),
                    ),
                    ("RecordingStatus", "completed".to_owned()),
                    ("RecordingDuration", c.talk_s.unwrap_or(0).to_string()),
                ],
            ),
        };
        if matches!(
            step,
            Step::LegInitiated | Step::LegRinging | Step::LegAnswered | Step::LegEnded
        ) {
            c.seq += 1;
        }
        params.retain(|(_, v)| !v.is_empty());
        self.target.twilio(&url, &params).await?;
        self.requests.twilio_webhooks += 1;
        Ok(())
    }

    /// A CallSid as Twilio writes them (`CA` and 32 hex digits), from the run's seed.
    fn sid(&mut self) -> String {
        let bits: u128 = self.rng.random();
        format!("CA{bits:032x}")
    }

    async fn finish(
        self,
        service: &Service,
        config: &SimConfig,
        wall: Instant,
    ) -> anyhow::Result<RunReport> {
        let routed = self
            .calls
            .iter()
            .filter(|c| !c.dial_action.is_empty())
            .count();
        let observed = service.all_calls(routed).await?;
        let changed_after_check = self
            .calls
            .iter()
            .filter(|c| {
                let (Some(then), Some(now)) = (&c.checked, observed.get(&c.sid)) else {
                    return false;
                };
                then.session != now.session || then.confidence != now.confidence
            })
            .count() as u64;
        let truths: Vec<Truth> = self.calls.iter().map(|c| c.truth.clone()).collect();
        let score = Score::of(&truths, &observed);
        let span_hours = ((self.now - START_MS) as f64 / HOUR_MS as f64).ceil() as i64;
        let whole = service
            .health(span_hours.clamp(1, 720), config.advisor_target)
            .await?;
        let settings = &service.state.settings;
        let visits: usize = self.visitors.iter().map(|v| v.visits.len()).sum();
        Ok(RunReport {
            seed: config.seed,
            pool_size: config.pool_size,
            lease_minutes: config.lease_minutes,
            exhaustion: config.exhaustion,
            database: match settings.backend() {
                crate::storage::Backend::Sqlite => "sqlite",
                crate::storage::Backend::Postgres => "postgres",
            },
            lease_store: service.state.leases.backend_name(),
            visitors: self.visitors.len(),
            visits,
            exhaustion_per_visit: whole.exhaustion_events as f64 / visits.max(1) as f64,
            requests: self.requests,
            simulated_hours: (self.now - START_MS) as f64 / HOUR_MS as f64,
            wall_seconds: wall.elapsed().as_secs_f64(),
            score,
            changed_after_check,
            advice: self.advice.unwrap_or_default(),
            exhaustion_events: whole.exhaustion_events,
            peak_concurrent_leases: whole.peak_concurrent_leases,
        })
    }
}

const ACCOUNT_SID: &str = "AC5e1f0c0ffee0000000000000000000000";

/// The business leg's final status (and `DialCallStatus`) for an ending, in Twilio's words.
fn leg_status(ending: Ending) -> &'static str {
    match ending {
        Ending::Answered => "completed",
        Ending::NoAnswer => "no-answer",
        Ending::Busy => "busy",
        Ending::HungUp => "canceled",
    }
}

/// The value of the first `name="..."` attribute in a TwiML answer, unescaped.
fn attribute(twiml: &str, name: &str) -> Option<String> {
    let start = twiml.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = start + twiml[start..].find('"')?;
    Some(
        twiml[start..end]
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twiml_attributes_are_read_and_unescaped() {
        let twiml = "<Response><Dial action=\"http://h/v1/dial?tn=%2B1&amp;x=1\" method=\"POST\">\
                     <Number statusCallback=\"http://h/status\">+1</Number></Dial></Response>";
        assert_eq!(
            attribute(twiml, "action").as_deref(),
            Some("http://h/v1/dial?tn=%2B1&x=1")
        );
        assert_eq!(
            attribute(twiml, "statusCallback").as_deref(),
            Some("http://h/status")
        );
        assert_eq!(attribute(twiml, "recordingStatusCallback"), None);
    }
}
