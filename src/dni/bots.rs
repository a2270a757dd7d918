//! Known automated visitors. They see the default number and take no lease: a crawler holding a
//! tracking number would misattribute the next real visitor's call.
//!
//! Matched case-insensitively anywhere in the User-Agent. Browsers driven by test tools
//! (HeadlessChrome) are not listed: they are how customers test their own pages.

use std::sync::LazyLock;

use regex::Regex;

/// Substrings of crawler and monitoring user agents.
pub const BOT_MARKERS: &[&str] = &[
    "bot",
    "crawl",
    "spider",
    "slurp",
    "facebookexternalhit",
    "facebookcatalog",
    "mediapartners-google",
    "adsbot",
    "apis-google",
    "feedfetcher",
    "google-inspectiontool",
    "bingpreview",
    "lighthouse",
    "pagespeed",
    "pingdom",
    "uptimerobot",
    "statuscake",
    "site24x7",
    "gtmetrix",
    "semrush",
    "ahrefs",
    "mj12",
    "dotbot",
    "petalbot",
    "bytespider",
    "gptbot",
    "ccbot",
    "claudebot",
    "perplexity",
    "embedly",
    "whatsapp",
    "skypeuripreview",
    "slackbot",
    "discordbot",
    "telegrambot",
    "preview",
];

static BOTS: LazyLock<Regex> = LazyLock::new(|| {
    let alternatives: Vec<String> = BOT_MARKERS.iter().map(|m| regex::escape(m)).collect();
    Regex::new(&format!("(?i){}", alternatives.join("|"))).expect("bot markers form a regex")
});

pub fn is_bot(user_agent: Option<&str>) -> bool {
    match user_agent.map(str::trim) {
        None | Some("") => true,
        Some(ua) => BOTS.is_match(ua),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crawlers_are_bots_and_browsers_are_not() {
        let bots = [
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
            "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
            "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
            "Mozilla/5.0 (Linux; Android 7.0; Moto G (4)) Chrome-Lighthouse",
            "",
        ];
        for ua in bots {
            assert!(is_bot(Some(ua)), "{ua}");
        }
        assert!(is_bot(None));
        let browsers = [
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0 Safari/537.36",
        ];
        for ua in browsers {
            assert!(!is_bot(Some(ua)), "{ua}");
        }
    }
}
