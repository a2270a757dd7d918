//! Twilio's webhooks in the service's call model: the voice webhook starts a call; status
//! callbacks, the `<Dial action>` callback and recording callbacks bring progress.

use crate::domain::{CallStatus, Outcome, PhoneNumber};
use crate::storage::{CallProgress, NewCall, RouteRow};
use crate::time::Millis;

pub const PROVIDER: &str = "twilio";

/// Numbers Twilio puts in `From` when the caller's number is withheld.
const WITHHELD: [&str; 4] = ["+266696687", "+7378742833", "+2562533", "+8656696"];

/// A webhook's form parameters.
pub struct Params(pub Vec<(String, String)>);

impl Params {
    /// A parameter's value; empty values count as absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.trim().is_empty())
    }

    fn owned(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_owned)
    }

    fn int(&self, name: &str) -> Option<i64> {
        self.get(name)?.trim().parse().ok()
    }

    /// When Twilio says the event happened (`Timestamp`, RFC 2822), else `now`.
    fn at(&self, now: Millis) -> Millis {
        self.get("Timestamp")
            .and_then(|t| chrono::DateTime::parse_from_rfc2822(t.trim()).ok())
            .map_or(now, |t| t.timestamp_millis())
    }

    /// The call a callback is about: a leg to the business reports under its parent.
    pub fn call_sid(&self) -> Option<&str> {
        self.get("ParentCallSid").or_else(|| self.get("CallSid"))
    }
}

/// The caller's number in E.164, or None when withheld or unparseable.
pub fn caller_number(raw: Option<&str>) -> Option<String> {
    let raw = raw?.trim();
    if WITHHELD.contains(&raw) {
        return None;
    }
    PhoneNumber::parse("From", raw).ok().map(|n| n.to_string())
}

/// The call the voice webhook announces, routed by `route`.
pub fn started_call(p: &Params, route: &RouteRow, now: Millis) -> NewCall {
    NewCall {
        account_id: route.account_id.clone(),
        property_id: route.property_id.clone(),
        pool_id: Some(route.pool_id.clone()),
        provider: PROVIDER.to_owned(),
        provider_call_id: p.call_sid().unwrap_or_default().to_owned(),
        tracking_number: route.number.clone(),
        caller_number: caller_number(p.get("From")),
        caller_name: p.owned("CallerName"),
        caller_city: p.owned("FromCity"),
        caller_state: p.owned("FromState"),
        caller_zip: p.owned("FromZip"),
        caller_country: p.owned("FromCountry"),
        status: p
            .get("CallStatus")
            .and_then(CallStatus::parse)
            .unwrap_or(CallStatus::Ringing)
            .as_str()
            .to_owned(),
        started_at: now,
    }
}

/// Which callback brought the parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Callback {
    /// A status callback: of the call itself, or (with `ParentCallSid`) of the leg to the business.
    Status,
    /// `<Dial action>`: the dial to the business is over; the call ends (we answer `<Hangup/>`).
    Dial,
    Recording,
}

/// The progress a callback reports. `route` is the tracking number's route when known (to
/// create a call the service has not heard of yet); without one the event only updates.
pub fn progress(
    kind: Callback,
    p: &Params,
    route: Option<&RouteRow>,
    account_scope: Option<&str>,
    now: Millis,
) -> Option<CallProgress> {
    let sid = p.call_sid()?.to_owned();
    let at = p.at(now);
    let call = NewCall {
        account_id: route
            .map(|r| r.account_id.as_str())
            .or(account_scope)
            .unwrap_or_default()
            .to_owned(),
        property_id: route.map(|r| r.property_id.clone()).unwrap_or_default(),
        pool_id: route.map(|r| r.pool_id.clone()),
        provider: PROVIDER.to_owned(),
        provider_call_id: sid,
        tracking_number: route.map(|r| r.number.clone()).unwrap_or_default(),
        // A leg's From is the caller id shown to the business, not necessarily the caller.
        caller_number: None,
        caller_name: None,
        caller_city: None,
        caller_state: None,
        caller_zip: None,
        caller_country: None,
        status: CallStatus::Queued.as_str().to_owned(),
        started_at: at,
    };
    let mut e = CallProgress {
        call,
        at,
        sequence: p.int("SequenceNumber"),
        status: None,
        duration_s: None,
        outcome: None,
        answered_at: None,
        talk_s: None,
        dial_status: None,
        recording_url: None,
        recording_sid: None,
        recording_duration_s: None,
    };
    let status = p.get("CallStatus").and_then(CallStatus::parse);
    match kind {
        Callback::Status if p.get("ParentCallSid").is_some() => {
            // The leg to the business: its answer is the call's answer.
            let leg = status?;
            e.outcome = leg.leg_outcome();
            match leg {
                CallStatus::Ringing => e.status = Some(CallStatus::Ringing.as_str().to_owned()),
                CallStatus::InProgress => {
                    e.status = Some(CallStatus::InProgress.as_str().to_owned());
                    e.answered_at = Some(at);
                }
                CallStatus::Completed => e.talk_s = p.int("CallDuration"),
                _ => {}
            }
        }
        Callback::Status => {
            let status = status?;
            if let Some(s) = p.get("From") {
                e.call.caller_number = caller_number(Some(s));
            }
            e.call.caller_city = p.owned("FromCity");
            e.call.caller_state = p.owned("FromState");
            e.call.caller_country = p.owned("FromCountry");
            e.status = Some(status.as_str().to_owned());
            e.duration_s = p.int("CallDuration");
            if status == CallStatus::InProgress {
                // Calls are dialled with answerOnBridge: the call is answered when the
                // business answers.
                e.answered_at = Some(at);
                e.outcome = Some(Outcome::Answered);
            }
            if matches!(
                status,
                CallStatus::Busy | CallStatus::NoAnswer | CallStatus::Failed | CallStatus::Canceled
            ) {
                e.outcome = Some(Outcome::Missed);
            }
        }
        Callback::Dial => {
            let dial = p.get("DialCallStatus")?;
            e.dial_status = Some(dial.to_owned());
            e.outcome = CallStatus::parse(dial).and_then(CallStatus::leg_outcome);
            e.talk_s = p.int("DialCallDuration");
            e.status = Some(CallStatus::Completed.as_str().to_owned());
            e.recording_url = p.owned("RecordingUrl");
            e.recording_sid = p.owned("RecordingSid");
            e.recording_duration_s = p.int("RecordingDuration");
        }
        Callback::Recording => {
            if p.get("RecordingStatus").is_some_and(|s| s != "completed") {
                return None;
            }
            e.recording_url = Some(p.owned("RecordingUrl")?);
            e.recording_sid = p.owned("RecordingSid");
            e.recording_duration_s = p.int("RecordingDuration");
        }
    }
    Some(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telephony::test_params as params;
    use crate::telephony::test_route as route;

    #[test]
    fn withheld_and_junk_callers_have_no_number() {
        assert_eq!(caller_number(Some("+266696687")), None);
        assert_eq!(caller_number(Some("anonymous")), None);
        assert_eq!(
            caller_number(Some("+1 (415) 555-0100")).as_deref(),
            Some("+14155550100")
        );
    }

    #[test]
    fn a_business_leg_reports_under_its_parent() {
        let p = params(&[
            ("CallSid", "CAchild"),
            ("ParentCallSid", "CAparent"),
            ("CallStatus", "in-progress"),
            ("Timestamp", "Mon, 16 Aug 2010 03:45:01 +0000"),
            ("SequenceNumber", "2"),
        ]);
        let e = progress(Callback::Status, &p, Some(&route()), None, 5).unwrap();
        assert_eq!(e.call.provider_call_id, "CAparent");
        assert_eq!(e.outcome, Some(Outcome::Answered));
        assert_eq!(e.answered_at, Some(1_281_930_301_000));
        assert_eq!(e.sequence, Some(2));
    }

    #[test]
    fn a_dial_that_nobody_answered_is_a_missed_call_that_ended() {
        let p = params(&[
            ("CallSid", "CA1"),
            ("DialCallStatus", "no-answer"),
            ("DialCallDuration", "0"),
        ]);
        let e = progress(Callback::Dial, &p, None, None, 7).unwrap();
        assert_eq!(e.outcome, Some(Outcome::Missed));
        assert_eq!(e.status.as_deref(), Some("completed"));
        assert_eq!(e.at, 7);
        assert_eq!(e.call.account_id, "", "no route: update only");
    }

    #[test]
    fn a_recording_in_progress_is_not_news() {
        let p = params(&[("CallSid", "CA1"), ("RecordingStatus", "in-progress")]);
        assert!(progress(Callback::Recording, &p, None, None, 1).is_none());
        let p = params(&[
            ("CallSid", "CA1"),
            ("RecordingStatus", "completed"),
            ("RecordingUrl", "https://api.twilio.com/rec/RE1"),
            ("RecordingDuration", "42"),
        ]);
        let e = progress(Callback::Recording, &p, None, None, 1).unwrap();
        assert_eq!(e.recording_duration_s, Some(42));
    }
}

/// Fuzzing with proptest: whatever bytes arrive as a webhook's form, reading them and turning
/// them into the call model never panics, and a caller's number is E.164 or absent.
#[cfg(test)]
mod properties {
    use super::*;
    use crate::telephony::test_route as route;
    use proptest::prelude::*;

    const NAMES: &[&str] = &[
        "CallSid",
        "ParentCallSid",
        "AccountSid",
        "From",
        "To",
        "CallStatus",
        "DialCallStatus",
        "CallDuration",
        "DialCallDuration",
        "SequenceNumber",
        "Timestamp",
        "RecordingStatus",
        "RecordingUrl",
        "RecordingDuration",
        "FromCity",
    ];

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "in-progress",
                "completed",
                "no-answer",
                "ringing",
                "+14155550100",
                "+266696687",
                "anonymous",
                "-9223372036854775808",
                "99999999999999999999",
                "Mon, 16 Aug 2010 03:45:01 +0000",
                "Mon, 16 Aug 99999 03:45:01 +9999",
                " ",
            ])
            .prop_map(str::to_owned),
            any::<String>(),
        ]
    }

    fn params() -> impl Strategy<Value = Vec<(String, String)>> {
        prop::collection::vec(
            (
                prop_oneof![
                    prop::sample::select(NAMES).prop_map(str::to_owned),
                    ".{0,8}"
                ],
                value(),
            ),
            0..12,
        )
    }

    fn read_everything(p: &Params) {
        let route = route();
        let _ = started_call(p, &route, 0);
        for kind in [Callback::Status, Callback::Dial, Callback::Recording] {
            let _ = progress(kind, p, Some(&route), Some("a"), 0);
            let _ = progress(kind, p, None, None, 0);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1_000))]

        #[test]
        fn any_bytes_read_as_a_form_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
            let p = Params(url::form_urlencoded::parse(&body).into_owned().collect());
            read_everything(&p);
        }

        #[test]
        fn any_parameters_turn_into_the_call_model(pairs in params()) {
            let p = Params(pairs);
            read_everything(&p);
            let call = started_call(&p, &route(), 0);
            prop_assert!(CallStatus::parse(&call.status).is_some());
            if let Some(n) = &call.caller_number {
                let again = PhoneNumber::parse("From", n).map(|n| n.to_string());
                prop_assert_eq!(again.as_ref(), Ok(n));
            }
        }

        /// What Twilio encodes is what the service reads, byte for byte.
        #[test]
        fn a_form_round_trips(pairs in params()) {
            let body = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&pairs)
                .finish();
            let read: Vec<(String, String)> =
                url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
            prop_assert_eq!(read, pairs);
        }
    }
}
