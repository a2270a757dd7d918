//! A call's status, as the providers name it (Twilio's words; other providers map onto them).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallStatus {
    Queued,
    Ringing,
    InProgress,
    Completed,
    Busy,
    NoAnswer,
    Failed,
    Canceled,
}

impl CallStatus {
    pub const ALL: [CallStatus; 8] = [
        CallStatus::Queued,
        CallStatus::Ringing,
        CallStatus::InProgress,
        CallStatus::Completed,
        CallStatus::Busy,
        CallStatus::NoAnswer,
        CallStatus::Failed,
        CallStatus::Canceled,
    ];

    /// Accepts Twilio's names, and `initiated` / `answered` as the leg events call them.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "queued" | "initiated" => CallStatus::Queued,
            "ringing" => CallStatus::Ringing,
            "in-progress" | "in_progress" | "answered" => CallStatus::InProgress,
            "completed" => CallStatus::Completed,
            "busy" => CallStatus::Busy,
            "no-answer" | "no_answer" => CallStatus::NoAnswer,
            "failed" => CallStatus::Failed,
            "canceled" | "cancelled" => CallStatus::Canceled,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Queued => "queued",
            CallStatus::Ringing => "ringing",
            CallStatus::InProgress => "in-progress",
            CallStatus::Completed => "completed",
            CallStatus::Busy => "busy",
            CallStatus::NoAnswer => "no-answer",
            CallStatus::Failed => "failed",
            CallStatus::Canceled => "canceled",
        }
    }

    /// Order along a call's life. A call's status only ever moves to a higher rank, so a late
    /// or repeated callback never moves it backwards; the first final status stays.
    pub fn rank(self) -> i64 {
        match self {
            CallStatus::Queued => 0,
            CallStatus::Ringing => 1,
            CallStatus::InProgress => 2,
            _ => 3,
        }
    }

    pub fn is_final(self) -> bool {
        self.rank() == 3
    }

    /// What a final status of the leg to the business says about the call: answered or missed.
    pub fn leg_outcome(self) -> Option<Outcome> {
        match self {
            CallStatus::InProgress | CallStatus::Completed => Some(Outcome::Answered),
            CallStatus::Busy | CallStatus::NoAnswer | CallStatus::Failed | CallStatus::Canceled => {
                Some(Outcome::Missed)
            }
            CallStatus::Queued | CallStatus::Ringing => None,
        }
    }
}

impl fmt::Display for CallStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the business picked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Answered,
    Missed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::Missed => "missed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_ranks_only_rise_to_final() {
        for s in CallStatus::ALL {
            assert_eq!(CallStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(CallStatus::parse("Answered"), Some(CallStatus::InProgress));
        assert_eq!(CallStatus::parse("initiated"), Some(CallStatus::Queued));
        assert_eq!(CallStatus::parse("on-hold"), None);
        assert!(CallStatus::Ringing.rank() < CallStatus::InProgress.rank());
        assert!(CallStatus::Busy.is_final() && CallStatus::Completed.is_final());
        assert!(!CallStatus::InProgress.is_final());
    }

    #[test]
    fn a_business_leg_that_ended_unanswered_is_a_missed_call() {
        assert_eq!(CallStatus::NoAnswer.leg_outcome(), Some(Outcome::Missed));
        assert_eq!(CallStatus::Completed.leg_outcome(), Some(Outcome::Answered));
        assert_eq!(CallStatus::Ringing.leg_outcome(), None);
    }
}
