//! TwiML answers.

use crate::domain::{CallSettings, CallerId};

/// Escapes text for XML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

const XML: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";

/// Where Twilio reports back about a forwarded call.
pub struct Callbacks {
    /// `<Dial action>`: the dial is over.
    pub dial: String,
    /// Status of the leg to the business.
    pub status: String,
    pub recording: String,
    /// The whisper TwiML, when the property has one.
    pub whisper: Option<String>,
}

/// Forwards the call to the business with the property's settings.
pub fn forward(
    to: &str,
    caller: Option<&str>,
    tracking_number: &str,
    settings: &CallSettings,
    callbacks: &Callbacks,
) -> String {
    let caller_id = match settings.caller_id {
        CallerId::Caller => caller,
        CallerId::TrackingNumber => Some(tracking_number),
    }
    .map(|c| format!(" callerId=\"{}\"", escape(c)))
    .unwrap_or_default();
    let recording = if settings.record {
        format!(
            " recordingStatusCallback=\"{}\" recordingStatusCallbackEvent=\"completed\"",
            escape(&callbacks.recording)
        )
    } else {
        String::new()
    };
    let whisper = callbacks
        .whisper
        .as_ref()
        .map(|u| format!(" url=\"{}\"", escape(u)))
        .unwrap_or_default();
    format!(
        "{XML}<Response><Dial{caller_id} timeout=\"{}\" answerOnBridge=\"true\" record=\"{}\" action=\"{}\" method=\"POST\"{recording}>\
         <Number statusCallbackEvent=\"initiated ringing answered completed\" statusCallback=\"{}\" statusCallbackMethod=\"POST\"{whisper}>{}</Number>\
         </Dial></Response>",
        settings.ring_timeout_s,
        settings.twilio_record(),
        escape(&callbacks.dial),
        escape(&callbacks.status),
        escape(to)
    )
}

/// A number the service does not know: say so politely and hang up.
pub fn not_in_service() -> String {
    format!(
        "{XML}<Response><Say>Sorry, the number you have called is not in service.</Say><Hangup/></Response>"
    )
}

/// Ends the call (after the dial to the business is over).
pub fn hangup() -> String {
    format!("{XML}<Response><Hangup/></Response>")
}

/// Nothing to do (a status callback needs no instructions).
pub fn empty() -> String {
    format!("{XML}<Response/>")
}

/// Says a short message to whoever answers (the whisper to the business).
pub fn say(text: &str) -> String {
    format!("{XML}<Response><Say>{}</Say></Response>", escape(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn callbacks(whisper: bool) -> Callbacks {
        Callbacks {
            dial: "https://sb.example/v1/telephony/twilio/dial?tn=%2B1800".into(),
            status: "https://sb.example/v1/telephony/twilio/status?tn=%2B1800&x=1".into(),
            recording: "https://sb.example/v1/telephony/twilio/recording".into(),
            whisper: whisper
                .then(|| "https://sb.example/v1/telephony/twilio/whisper?call=CA1".into()),
        }
    }

    #[test]
    fn forwards_with_escaped_values_and_callbacks() {
        let xml = forward(
            "+14155550100",
            Some("+1415<&>"),
            "+18005550199",
            &CallSettings::default(),
            &callbacks(false),
        );
        assert!(xml.contains("<Dial callerId=\"+1415&lt;&amp;&gt;\" timeout=\"20\" answerOnBridge=\"true\" record=\"do-not-record\""));
        assert!(xml.contains(
            "statusCallback=\"https://sb.example/v1/telephony/twilio/status?tn=%2B1800&amp;x=1\""
        ));
        assert!(xml.contains(">+14155550100</Number></Dial></Response>"));
        assert!(!xml.contains("recordingStatusCallback"));
        assert!(!xml.contains(" url="));
    }

    #[test]
    fn settings_shape_the_dial() {
        let settings = CallSettings {
            ring_timeout_s: 30,
            record: true,
            caller_id: CallerId::TrackingNumber,
            ..CallSettings::default()
        };
        let xml = forward(
            "+14155550100",
            Some("+1212"),
            "+18005550199",
            &settings,
            &callbacks(true),
        );
        assert!(xml.contains("callerId=\"+18005550199\" timeout=\"30\""));
        assert!(xml.contains("record=\"record-from-answer-dual\""));
        assert!(xml.contains("recordingStatusCallback="));
        assert!(xml.contains(" url=\"https://sb.example/v1/telephony/twilio/whisper?call=CA1\""));
        assert!(not_in_service().contains("<Hangup/>"));
        assert_eq!(
            say("Paid <Search>"),
            format!("{XML}<Response><Say>Paid &lt;Search&gt;</Say></Response>")
        );
    }
}
