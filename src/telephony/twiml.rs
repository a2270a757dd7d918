//! TwiML answers.

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

/// Forwards the call to the business, showing the caller's number to it.
pub fn forward(to: &str, caller: Option<&str>, timeout_s: u32) -> String {
    let caller_id = caller
        .map(|c| format!(" callerId=\"{}\"", escape(c)))
        .unwrap_or_default();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Dial{caller_id} timeout=\"{timeout_s}\" answerOnBridge=\"true\"><Number>{}</Number></Dial></Response>",
        escape(to)
    )
}

/// A number the service does not know: say so politely and hang up.
pub fn not_in_service() -> String {
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Say>Sorry, the number you have called is not in service.</Say><Hangup/></Response>".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_with_escaped_values() {
        assert_eq!(
            forward("+14155550100", Some("+1415<&>"), 20),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Dial callerId=\"+1415&lt;&amp;&gt;\" timeout=\"20\" answerOnBridge=\"true\"><Number>+14155550100</Number></Dial></Response>"
        );
        assert!(forward("+1", None, 5).contains("<Dial timeout=\"5\""));
        assert!(not_in_service().contains("<Hangup/>"));
    }
}
