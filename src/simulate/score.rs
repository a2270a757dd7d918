//! Ground truth against the service's answer: each call's true session (the one that showed the
//! caller the number they dialled) beside the attribution the calls API gives.

use std::collections::BTreeMap;

use serde::Serialize;

use super::traffic::CallTiming;
use crate::attribution::Confidence;

/// What the simulator knows about a call it placed.
#[derive(Debug, Clone)]
pub struct Truth {
    pub call_sid: String,
    pub timing: CallTiming,
    /// The session whose page showed the number dialled.
    pub session: String,
    /// The channel that session's visit came from (GA4's name).
    pub channel: &'static str,
    /// The caller's own lease still ran when they called (by the expiry of the last answer):
    /// the service knows the number was theirs.
    pub lease_live: bool,
}

/// What the service said about the call (from `GET /v1/properties/{id}/calls`).
#[derive(Debug, Clone, Default)]
pub struct Observed {
    pub confidence: Option<String>,
    pub session: Option<String>,
    pub channel: Option<String>,
}

/// Calls by how their attribution compares with the truth.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Tally {
    pub calls: u64,
    /// Attributed to the session that showed the number.
    pub correct: u64,
    /// Attributed to another session.
    pub wrong: u64,
    /// No session named (confidence `none`, or the call never reached the calls API).
    pub unattributed: u64,
}

impl Tally {
    fn add(&mut self, outcome: Outcome) {
        self.calls += 1;
        match outcome {
            Outcome::Correct => self.correct += 1,
            Outcome::Wrong => self.wrong += 1,
            Outcome::Unattributed => self.unattributed += 1,
        }
    }

    /// Correct calls over all calls; None without calls.
    pub fn accuracy(&self) -> Option<f64> {
        (self.calls > 0).then(|| self.correct as f64 / self.calls as f64)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Correct,
    Wrong,
    Unattributed,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Score {
    pub total: Tally,
    /// By the confidence the service gave (`exact`, `shared`, `overflow`, `expired`, `source`,
    /// `none`, and `missing` for a call the API does not show).
    pub by_confidence: BTreeMap<String, Tally>,
    /// By when the caller called (`during_visit`, `after_leaving`, `later`, `repeat`).
    pub by_timing: BTreeMap<String, Tally>,
    /// Confidence by timing: which calls each confidence level covers.
    pub by_confidence_and_timing: BTreeMap<String, BTreeMap<String, Tally>>,
    /// Calls whose attributed channel is the channel of the true visit (right even when the
    /// session is not, e.g. two paid-search visitors sharing a number).
    pub channel_right: u64,
    /// Calls attributed `exact` to another session while the caller's own lease still ran: the
    /// service had what it needed and got it wrong. Must be 0. (A caller dialling a saved
    /// number after it passed to someone else is `exact` and wrong by necessity: nothing in the
    /// call tells them apart.)
    pub exact_wrong_while_leased: u64,
}

impl Score {
    pub fn of(truths: &[Truth], observed: &BTreeMap<String, Observed>) -> Self {
        let mut score = Score::default();
        for c in Confidence::ALL {
            score
                .by_confidence
                .insert(c.as_str().to_owned(), Tally::default());
        }
        for t in CallTiming::ALL {
            score
                .by_timing
                .insert(t.name().to_owned(), Tally::default());
        }
        for truth in truths {
            let seen = observed.get(&truth.call_sid);
            let outcome = match seen.and_then(|o| o.session.as_deref()) {
                Some(s) if s == truth.session => Outcome::Correct,
                Some(_) => Outcome::Wrong,
                None => Outcome::Unattributed,
            };
            let confidence = seen
                .and_then(|o| o.confidence.clone())
                .unwrap_or_else(|| "missing".to_owned());
            score.total.add(outcome);
            score
                .by_confidence_and_timing
                .entry(confidence.clone())
                .or_default()
                .entry(truth.timing.name().to_owned())
                .or_default()
                .add(outcome);
            score
                .by_confidence
                .entry(confidence.clone())
                .or_default()
                .add(outcome);
            score
                .by_timing
                .entry(truth.timing.name().to_owned())
                .or_default()
                .add(outcome);
            if confidence == Confidence::Exact.as_str()
                && outcome == Outcome::Wrong
                && truth.lease_live
            {
                score.exact_wrong_while_leased += 1;
            }
            if seen.and_then(|o| o.channel.as_deref()) == Some(truth.channel) {
                score.channel_right += 1;
            }
        }
        score
    }

    pub fn tally(&self, confidence: Confidence) -> Tally {
        self.by_confidence
            .get(confidence.as_str())
            .copied()
            .unwrap_or_default()
    }

    /// Calls of one confidence level and one timing.
    pub fn cell(&self, confidence: Confidence, timing: CallTiming) -> Tally {
        self.by_confidence_and_timing
            .get(confidence.as_str())
            .and_then(|t| t.get(timing.name()))
            .copied()
            .unwrap_or_default()
    }

    pub fn during_visit(&self) -> Tally {
        self.by_timing
            .get(CallTiming::DuringVisit.name())
            .copied()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn truth(sid: &str, timing: CallTiming, session: &str) -> Truth {
        Truth {
            call_sid: sid.into(),
            timing,
            session: session.into(),
            channel: "Paid Search",
            lease_live: timing == CallTiming::DuringVisit,
        }
    }

    fn seen(confidence: &str, session: Option<&str>, channel: &str) -> Observed {
        Observed {
            confidence: Some(confidence.into()),
            session: session.map(Into::into),
            channel: Some(channel.into()),
        }
    }

    #[test]
    fn calls_are_scored_against_the_session_that_showed_the_number() {
        let truths = [
            truth("CA1", CallTiming::DuringVisit, "s1"),
            truth("CA2", CallTiming::DuringVisit, "s2"),
            truth("CA3", CallTiming::Later, "s3"),
            truth("CA4", CallTiming::Repeat, "s4"),
            truth("CA5", CallTiming::Later, "s5"),
        ];
        let observed = BTreeMap::from([
            ("CA1".to_owned(), seen("exact", Some("s1"), "Paid Search")),
            ("CA2".to_owned(), seen("shared", Some("s9"), "Paid Search")),
            ("CA3".to_owned(), seen("none", None, "Unattributed")),
            ("CA5".to_owned(), seen("exact", Some("s6"), "Direct")),
        ]);
        let s = Score::of(&truths, &observed);
        assert_eq!(
            s.total,
            Tally {
                calls: 5,
                correct: 1,
                wrong: 2,
                unattributed: 2
            }
        );
        assert_eq!(s.tally(Confidence::Exact).correct, 1);
        assert_eq!(s.tally(Confidence::Shared).wrong, 1);
        assert_eq!(s.by_confidence["missing"].unattributed, 1);
        assert_eq!(s.during_visit().accuracy(), Some(0.5));
        assert_eq!(s.cell(Confidence::Shared, CallTiming::DuringVisit).wrong, 1);
        assert_eq!(s.cell(Confidence::Exact, CallTiming::Later).wrong, 1);
        assert_eq!(
            s.exact_wrong_while_leased, 0,
            "a saved number is not the service's error"
        );
        assert_eq!(
            s.channel_right, 2,
            "a wrong session of the right channel still counts"
        );
        assert_eq!(Tally::default().accuracy(), None);
    }
}
