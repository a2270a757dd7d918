//! Classify a web visit into source / medium / campaign / click ids and a GA4 default
//! channel group.
//!
//! The channel rules follow GA4's default channel group table (first match wins); see
//! `shared/reference/ga4-channels.md`. Source and medium are derived first, in this order:
//! UTM parameters, ad click ids, an external referrer, and finally `(direct)` / `(none)`.
//! Everything is compared case-insensitively; source and medium are stored lowercase.

use std::fmt;
use std::net::IpAddr;
use std::sync::LazyLock;

use regex::Regex;
use url::Url;

use super::channel_lists::{
    CANONICAL_SOURCES, SEARCH_SITES, SHOPPING_SITES, SOCIAL_SITES, VIDEO_SITES, WEBMAIL_HOSTS,
};

/// GA4's paid-medium regex, applied to the lowercased medium.
static PAID: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(.*cp.*|ppc|retargeting|paid.*)$").expect("PAID regex"));

/// GA4's shopping-campaign regex, applied to the lowercased campaign. The class `[^a-df-z]`
/// deliberately lets "eshop" and "spring_shop" match while "workshop" does not.
static SHOP_CAMPAIGN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(.*(([^a-df-z]|^)shop|shopping).*)$").expect("SHOP_CAMPAIGN regex")
});

const DIRECT: &str = "(direct)";
const NONE: &str = "(none)";
const NOT_SET: &str = "(not set)";

// Exact-value sets from the GA4 rule table.
const DISPLAY_MEDIUMS: &[&str] = &["display", "banner", "expandable", "interstitial", "cpm"];
const SOCIAL_MEDIUMS: &[&str] = &[
    "social",
    "social-network",
    "social-media",
    "sm",
    "social network",
    "social media",
];
const REFERRAL_MEDIUMS: &[&str] = &["referral", "app", "link"];
const EMAIL_VALUES: &[&str] = &["email", "e-mail", "e_mail", "e mail"];

/// GA4 default channel groups, in rule order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Direct,
    CrossNetwork,
    PaidShopping,
    PaidSearch,
    PaidSocial,
    PaidVideo,
    Display,
    PaidOther,
    OrganicShopping,
    OrganicSocial,
    OrganicVideo,
    OrganicSearch,
    Referral,
    Email,
    Affiliates,
    Audio,
    Sms,
    MobilePushNotifications,
    Unassigned,
}

impl Channel {
    /// Every channel, in GA4 rule order.
    pub const ALL: [Channel; 19] = [
        Channel::Direct,
        Channel::CrossNetwork,
        Channel::PaidShopping,
        Channel::PaidSearch,
        Channel::PaidSocial,
        Channel::PaidVideo,
        Channel::Display,
        Channel::PaidOther,
        Channel::OrganicShopping,
        Channel::OrganicSocial,
        Channel::OrganicVideo,
        Channel::OrganicSearch,
        Channel::Referral,
        Channel::Email,
        Channel::Affiliates,
        Channel::Audio,
        Channel::Sms,
        Channel::MobilePushNotifications,
        Channel::Unassigned,
    ];

    /// GA4's display name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Channel::Direct => "Direct",
            Channel::CrossNetwork => "Cross-network",
            Channel::PaidShopping => "Paid Shopping",
            Channel::PaidSearch => "Paid Search",
            Channel::PaidSocial => "Paid Social",
            Channel::PaidVideo => "Paid Video",
            Channel::Display => "Display",
            Channel::PaidOther => "Paid Other",
            Channel::OrganicShopping => "Organic Shopping",
            Channel::OrganicSocial => "Organic Social",
            Channel::OrganicVideo => "Organic Video",
            Channel::OrganicSearch => "Organic Search",
            Channel::Referral => "Referral",
            Channel::Email => "Email",
            Channel::Affiliates => "Affiliates",
            Channel::Audio => "Audio",
            Channel::Sms => "SMS",
            Channel::MobilePushNotifications => "Mobile Push Notifications",
            Channel::Unassigned => "Unassigned",
        }
    }

    /// Inverse of [`Channel::as_str`], case-insensitive; `_`, `-` and spaces are
    /// interchangeable, so "Paid Search", "paid_search" and "cross_network" all parse.
    pub fn parse(s: &str) -> Option<Channel> {
        let key = channel_key(s);
        Channel::ALL
            .into_iter()
            .find(|c| channel_key(c.as_str()) == key)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Lowercase, with `_`/`-` turned into spaces and runs of whitespace collapsed.
fn channel_key(s: &str) -> String {
    let spaced: String = s
        .chars()
        .map(|c| match c {
            '_' | '-' => ' ',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    spaced.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Ad-platform click ids found on the landing page (trimmed; empty values are absent).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClickIds {
    pub gclid: Option<String>,
    pub gbraid: Option<String>,
    pub wbraid: Option<String>,
    pub msclkid: Option<String>,
    pub fbclid: Option<String>,
    pub ttclid: Option<String>,
    pub li_fat_id: Option<String>,
}

impl ClickIds {
    /// The source / medium a click id implies, strongest signal first. `fbclid` comes last
    /// because Facebook also appends it to organic outbound links.
    fn implied_source_medium(&self) -> Option<(&'static str, &'static str)> {
        // fbclid, ttclid and li_fat_id map to medium "paid" (matches PAID, so with a social
        // source the visit is Paid Social). Product decision: fbclid implies paid social even
        // though it is also added to organic Facebook links; a utm_medium, when present,
        // overrides it (e.g. utm_medium=social gives Organic Social).
        [
            (&self.gclid, "google", "cpc"),
            (&self.gbraid, "google", "cpc"),
            (&self.wbraid, "google", "cpc"),
            (&self.msclkid, "bing", "cpc"),
            (&self.ttclid, "tiktok", "paid"),
            (&self.li_fat_id, "linkedin", "paid"),
            (&self.fbclid, "facebook", "paid"),
        ]
        .into_iter()
        .find(|(id, _, _)| id.is_some())
        .map(|(_, source, medium)| (source, medium))
    }
}

/// The result of classifying one visit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    /// Lowercase source, e.g. `google`, `newsletter`, `(direct)`.
    pub source: String,
    /// Lowercase medium, e.g. `cpc`, `organic`, `referral`, `(none)`, `(not set)`.
    pub medium: String,
    /// `utm_campaign` as given (trimmed).
    pub campaign: Option<String>,
    /// `utm_term` as given (trimmed).
    pub term: Option<String>,
    /// `utm_content` as given (trimmed).
    pub content: Option<String>,
    pub click_ids: ClickIds,
    pub channel: Channel,
}

/// Parses a `document.referrer` value; empty, unparseable or host-less values are `None`.
pub fn parse_referrer(referrer: &str) -> Option<Url> {
    let referrer = referrer.trim();
    if referrer.is_empty() {
        return None;
    }
    Url::parse(referrer)
        .ok()
        .filter(|u| u.host_str().is_some_and(|h| !h.is_empty()))
}

/// Classifies a visit. `landing` is the page URL; `referrer` is `document.referrer`.
pub fn classify(landing: &Url, referrer: Option<&Url>) -> Classification {
    let params = Params::from_url(landing);
    let implied = params.click_ids.implied_source_medium();
    let utm_source = params.source.as_deref().map(str::to_lowercase);
    let utm_medium = params.medium.as_deref().map(str::to_lowercase);

    let (source, medium) = if utm_source.is_some() || utm_medium.is_some() {
        // UTMs win; a click id only fills whichever half is missing.
        let source = utm_source
            .or_else(|| implied.map(|(s, _)| s.to_owned()))
            .unwrap_or_else(|| NOT_SET.to_owned());
        let medium = utm_medium
            .or_else(|| implied.map(|(_, m)| m.to_owned()))
            .unwrap_or_else(|| NOT_SET.to_owned());
        (source, medium)
    } else if let Some((source, medium)) = implied {
        (source.to_owned(), medium.to_owned())
    } else if let Some(host) = external_referrer_host(landing, referrer) {
        from_referrer_host(&host)
    } else {
        (DIRECT.to_owned(), NONE.to_owned())
    };

    let channel = channel_for(&source, &medium, params.campaign.as_deref());
    Classification {
        source,
        medium,
        campaign: params.campaign,
        term: params.term,
        content: params.content,
        click_ids: params.click_ids,
        channel,
    }
}

/// Applies GA4's default channel group rules (first match wins) to a source, medium and
/// campaign. Inputs are compared case-insensitively, so stored values can be re-grouped.
pub fn channel_for(source: &str, medium: &str, campaign: Option<&str>) -> Channel {
    let source = source.trim().to_lowercase();
    let medium = medium.trim().to_lowercase();
    let campaign = campaign
        .map(|c| c.trim().to_lowercase())
        .unwrap_or_default();

    let paid = PAID.is_match(&medium);
    let shop_campaign = SHOP_CAMPAIGN.is_match(&campaign);
    let shopping = shop_campaign || is_listed(&source, SHOPPING_SITES);
    let search = is_listed(&source, SEARCH_SITES);
    let social = is_listed(&source, SOCIAL_SITES);
    let video = is_listed(&source, VIDEO_SITES);
    let source_or_medium =
        |set: &[&str]| set.contains(&source.as_str()) || set.contains(&medium.as_str());

    if source == DIRECT && (medium == NOT_SET || medium == NONE) {
        Channel::Direct
    } else if campaign.contains("cross-network") {
        Channel::CrossNetwork
    } else if shopping && paid {
        Channel::PaidShopping
    } else if search && paid {
        Channel::PaidSearch
    } else if social && paid {
        Channel::PaidSocial
    } else if video && paid {
        Channel::PaidVideo
    } else if DISPLAY_MEDIUMS.contains(&medium.as_str()) {
        Channel::Display
    } else if paid {
        Channel::PaidOther
    } else if shopping {
        Channel::OrganicShopping
    } else if social || SOCIAL_MEDIUMS.contains(&medium.as_str()) {
        Channel::OrganicSocial
    } else if video || medium.contains("video") {
        Channel::OrganicVideo
    } else if search || medium == "organic" {
        Channel::OrganicSearch
    } else if REFERRAL_MEDIUMS.contains(&medium.as_str()) {
        Channel::Referral
    } else if source_or_medium(EMAIL_VALUES) {
        Channel::Email
    } else if medium == "affiliate" {
        Channel::Affiliates
    } else if medium == "audio" {
        Channel::Audio
    } else if source_or_medium(&["sms"]) {
        Channel::Sms
    } else if medium.ends_with("push")
        || medium.contains("mobile")
        || medium.contains("notification")
        || source == "firebase"
    {
        Channel::MobilePushNotifications
    } else {
        Channel::Unassigned
    }
}

/// The tracking parameters of a landing URL.
#[derive(Default)]
struct Params {
    source: Option<String>,
    medium: Option<String>,
    campaign: Option<String>,
    term: Option<String>,
    content: Option<String>,
    click_ids: ClickIds,
}

impl Params {
    /// Reads the query string. Parameter names are case-insensitive (`UTM_MEDIUM`), values are
    /// trimmed, empty values count as absent, and the first non-empty occurrence wins.
    /// `query_pairs` is lossy, so malformed percent-escapes never fail.
    fn from_url(url: &Url) -> Params {
        let mut p = Params::default();
        for (key, value) in url.query_pairs() {
            let slot = match key.trim().to_ascii_lowercase().as_str() {
                "utm_source" => &mut p.source,
                "utm_medium" => &mut p.medium,
                "utm_campaign" => &mut p.campaign,
                "utm_term" => &mut p.term,
                "utm_content" => &mut p.content,
                "gclid" => &mut p.click_ids.gclid,
                "gbraid" => &mut p.click_ids.gbraid,
                "wbraid" => &mut p.click_ids.wbraid,
                "msclkid" => &mut p.click_ids.msclkid,
                "fbclid" => &mut p.click_ids.fbclid,
                "ttclid" => &mut p.click_ids.ttclid,
                "li_fat_id" => &mut p.click_ids.li_fat_id,
                _ => continue,
            };
            let value = value.trim();
            if slot.is_none() && !value.is_empty() {
                *slot = Some(value.to_owned());
            }
        }
        p
    }
}

/// The referrer's normalised host, unless there is none or it is the landing page's own site
/// (internal navigation must not overwrite the original source).
fn external_referrer_host(landing: &Url, referrer: Option<&Url>) -> Option<String> {
    let host = normalise_host(referrer?.host_str()?)?;
    let own = landing.host_str().and_then(normalise_host);
    match own {
        Some(own) if same_site(&own, &host) => None,
        _ => Some(host),
    }
}

/// Lowercase, without a trailing dot; `None` when empty.
fn normalise_host(host: &str) -> Option<String> {
    let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty()).then_some(host)
}

fn strip_www(host: &str) -> &str {
    host.strip_prefix("www.").unwrap_or(host)
}

/// Source and medium for a visit that only has an external referrer.
fn from_referrer_host(host: &str) -> (String, String) {
    if WEBMAIL_HOSTS.iter().any(|e| host_matches(host, e)) {
        return (strip_www(host).to_owned(), "referral".to_owned());
    }
    let medium = if SEARCH_SITES.iter().any(|e| host_matches(host, e)) {
        "organic"
    } else {
        "referral"
    };
    (canonical_source(host), medium.to_owned())
}

/// Canonical name for a referrer host: an explicit alias, else the most specific list entry
/// it matches (dotted host entries before brands), else the host without `www.`.
fn canonical_source(host: &str) -> String {
    if let Some((_, name)) = CANONICAL_SOURCES
        .iter()
        .find(|(p, _)| host_matches(host, p))
    {
        return (*name).to_owned();
    }
    let lists = [SEARCH_SITES, SOCIAL_SITES, VIDEO_SITES, SHOPPING_SITES];
    let entries = || lists.iter().flat_map(|l| l.iter());
    entries()
        .filter(|e| e.contains('.'))
        .chain(entries().filter(|e| !e.contains('.')))
        .find(|e| host_matches(host, e))
        .map_or_else(|| strip_www(host).to_owned(), |e| (*e).to_owned())
}

/// Whether a (lowercase) source value is in a site list: equal to an entry, or a host-like
/// value (`m.facebook.com`) that [`host_matches`] an entry.
/// Webmail hosts are never listed, although they sit on search-engine domains.
fn is_listed(source: &str, list: &[&str]) -> bool {
    if list.contains(&source) {
        return true;
    }
    looks_like_host(source)
        && !WEBMAIL_HOSTS.iter().any(|e| host_matches(source, e))
        && list.iter().any(|e| host_matches(source, e))
}

fn looks_like_host(s: &str) -> bool {
    s.contains('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// Dotless list entries shorter than this are utm_source aliases only (`fb`, `ig`).
const MIN_BRAND_LEN: usize = 3;

/// Whether `host` belongs to the site a list entry names, case-insensitively.
///
/// - `entry` with a dot (`t.co`, `shopping.google.com`): `host` equals it or is a subdomain.
/// - `entry` without a dot (`google`): the first label of `host`'s registrable domain equals
///   it, so `www.google.co.uk` and `news.google.com` match but `notgoogle.com`,
///   `googleusercontent.com` and `google.evil.com` do not.
pub fn host_matches(host: &str, entry: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let entry = entry.to_ascii_lowercase();
    if entry.is_empty() || host.is_empty() {
        return false;
    }
    if entry.contains('.') {
        host == entry
            || host
                .strip_suffix(entry.as_str())
                .is_some_and(|rest| rest.ends_with('.'))
    } else {
        entry.len() >= MIN_BRAND_LEN
            && host.contains('.')
            && registrable_domain(&host).split('.').next() == Some(entry.as_str())
    }
}

/// Second-level labels that act as public suffixes under a two-letter country TLD
/// (`example.co.uk`, `example.com.au`).
const SHORT_SLDS: &[&str] = &["co", "com", "org", "net", "ac", "gov", "edu"];

/// A heuristic registrable domain ("eTLD+1") without a public-suffix list: the last two
/// labels, or the last three when the second-to-last is a short SLD under a two-letter TLD.
/// IP addresses are returned whole.
pub fn registrable_domain(host: &str) -> &str {
    let host = host.trim_end_matches('.');
    if host.starts_with('[') || host.parse::<IpAddr>().is_ok() {
        return host;
    }
    let labels: Vec<&str> = host.rsplit('.').collect();
    let keep = match labels.as_slice() {
        [tld, sld, ..]
            if tld.len() == 2 && SHORT_SLDS.iter().any(|s| s.eq_ignore_ascii_case(sld)) =>
        {
            3
        }
        _ => 2,
    };
    if labels.len() <= keep {
        return host;
    }
    // Byte offset where the kept labels start: total length minus their lengths and dots.
    let kept_len: usize = labels[..keep].iter().map(|l| l.len()).sum::<usize>() + keep - 1;
    &host[host.len() - kept_len..]
}

/// Whether two hosts belong to the same site: equal, or sharing a registrable domain
/// (`www.example.com` / `shop.example.com`, `example.co.uk` / `www.example.co.uk`).
pub fn same_site(a: &str, b: &str) -> bool {
    let (a, b) = (a.trim_end_matches('.'), b.trim_end_matches('.'));
    !a.is_empty()
        && !b.is_empty()
        && (a.eq_ignore_ascii_case(b)
            || registrable_domain(a).eq_ignore_ascii_case(registrable_domain(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (name, landing URL, referrer ("" = none), source, medium, channel).
    type Case = (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        Channel,
    );

    #[rustfmt::skip]
    const CASES: &[Case] = &[
        // 1 Direct
        ("nothing", "https://example.com/", "", "(direct)", "(none)", Channel::Direct),
        ("same host referrer", "https://www.example.com/a", "https://www.example.com/b", "(direct)", "(none)", Channel::Direct),
        ("subdomain referrer", "https://www.example.com/", "https://shop.example.com/cart", "(direct)", "(none)", Channel::Direct),
        ("apex vs www co.uk", "https://example.co.uk/", "https://www.example.co.uk/", "(direct)", "(none)", Channel::Direct),
        ("empty utms", "https://example.com/?utm_source=&utm_medium=%20&utm_campaign=", "", "(direct)", "(none)", Channel::Direct),
        ("utm (direct)", "https://example.com/?utm_source=(direct)", "", "(direct)", "(not set)", Channel::Direct),
        ("campaign only is still direct", "https://example.com/?utm_campaign=spring", "", "(direct)", "(none)", Channel::Direct),
        // 2 Cross-network
        ("cross-network campaign", "https://example.com/?utm_source=google&utm_medium=cpc&utm_campaign=PMax_Cross-Network_Q1", "", "google", "cpc", Channel::CrossNetwork),
        ("cross-network with gclid only", "https://example.com/?gclid=abc&utm_campaign=cross-network", "", "google", "cpc", Channel::CrossNetwork),
        // 3 Paid Shopping
        ("shop campaign paid", "https://example.com/?utm_source=google&utm_medium=cpc&utm_campaign=spring_shop", "", "google", "cpc", Channel::PaidShopping),
        ("shopping site paid", "https://example.com/?utm_source=amazon&utm_medium=ppc", "", "amazon", "ppc", Channel::PaidShopping),
        ("igshopping paid", "https://example.com/?utm_source=IGShopping&utm_medium=paid", "", "igshopping", "paid", Channel::PaidShopping),
        // 4 Paid Search
        ("gclid alone", "https://example.com/?gclid=Cj0KCQ", "", "google", "cpc", Channel::PaidSearch),
        ("workshop campaign is not shopping", "https://example.com/?utm_source=google&utm_medium=cpc&utm_campaign=workshop", "", "google", "cpc", Channel::PaidSearch),
        ("uppercase utm names and values", "https://example.com/?UTM_SOURCE=Google&UTM_MEDIUM=CPC", "", "google", "cpc", Channel::PaidSearch),
        ("bing cpc", "https://example.com/?utm_source=bing&utm_medium=cpc", "", "bing", "cpc", Channel::PaidSearch),
        ("host-like search source", "https://example.com/?utm_source=www.google.de&utm_medium=ppc", "", "www.google.de", "ppc", Channel::PaidSearch),
        ("cpm on search is paid search", "https://example.com/?utm_source=google&utm_medium=cpm", "", "google", "cpm", Channel::PaidSearch),
        // 5 Paid Social
        ("fbclid alone", "https://example.com/?fbclid=IwAR0", "", "facebook", "paid", Channel::PaidSocial),
        ("fb alias paid_social", "https://example.com/?utm_source=fb&utm_medium=paid_social", "", "fb", "paid_social", Channel::PaidSocial),
        ("ig alias cpc", "https://example.com/?utm_source=ig&utm_medium=cpc", "", "ig", "cpc", Channel::PaidSocial),
        // 6 Paid Video
        ("youtube cpv", "https://example.com/?utm_source=youtube&utm_medium=cpv", "", "youtube", "cpv", Channel::PaidVideo),
        // 7 Display
        ("display medium", "https://example.com/?utm_source=dv360&utm_medium=display", "", "dv360", "display", Channel::Display),
        ("cpm medium off search", "https://example.com/?utm_source=adnetwork&utm_medium=cpm", "", "adnetwork", "cpm", Channel::Display),
        ("banner medium", "https://example.com/?utm_source=partner&utm_medium=Banner", "", "partner", "banner", Channel::Display),
        // 8 Paid Other
        ("ppc unknown source", "https://example.com/?utm_source=partner&utm_medium=ppc", "", "partner", "ppc", Channel::PaidOther),
        ("retargeting no source", "https://example.com/?utm_medium=retargeting", "", "(not set)", "retargeting", Channel::PaidOther),
        ("source with gclid medium", "https://example.com/?utm_source=newsletter&gclid=x", "", "newsletter", "cpc", Channel::PaidOther),
        // 9 Organic Shopping
        ("amazon referrer", "https://example.com/", "https://www.amazon.co.uk/dp/B0", "amazon", "referral", Channel::OrganicShopping),
        ("google shopping referrer", "https://example.com/", "https://shopping.google.com/", "google shopping", "organic", Channel::OrganicShopping),
        ("eshop campaign on search referrer", "https://example.com/?utm_campaign=eshop_launch", "https://www.google.com/", "google", "organic", Channel::OrganicShopping),
        // 10 Organic Social
        ("t.co referrer", "https://example.com/", "https://t.co/abc", "twitter", "referral", Channel::OrganicSocial),
        ("l.facebook.com referrer", "https://example.com/", "https://l.facebook.com/l.php?u=x", "facebook", "referral", Channel::OrganicSocial),
        ("m.facebook.com referrer", "https://example.com/", "https://m.facebook.com/", "facebook", "referral", Channel::OrganicSocial),
        ("lnkd.in referrer", "https://example.com/", "https://lnkd.in/xyz", "linkedin", "referral", Channel::OrganicSocial),
        ("x.com referrer", "https://example.com/", "https://x.com/someone", "twitter", "referral", Channel::OrganicSocial),
        ("reddit referrer", "https://example.com/", "https://old.reddit.com/r/rust", "reddit", "referral", Channel::OrganicSocial),
        ("social medium", "https://example.com/?utm_source=partnerblog&utm_medium=social-media", "", "partnerblog", "social-media", Channel::OrganicSocial),
        ("fbclid with utm_medium social", "https://example.com/?utm_medium=social&fbclid=x", "", "facebook", "social", Channel::OrganicSocial),
        // 11 Organic Video
        ("youtube referrer", "https://example.com/", "https://www.youtube.com/watch?v=1", "youtube", "referral", Channel::OrganicVideo),
        ("youtu.be referrer", "https://example.com/", "https://youtu.be/1", "youtube", "referral", Channel::OrganicVideo),
        ("video medium", "https://example.com/?utm_source=webinar&utm_medium=Video_Embed", "", "webinar", "video_embed", Channel::OrganicVideo),
        // 12 Organic Search
        ("google.co.uk referrer", "https://example.com/", "https://www.google.co.uk/", "google", "organic", Channel::OrganicSearch),
        ("news.google.com referrer", "https://example.com/", "https://news.google.com/x", "google", "organic", Channel::OrganicSearch),
        ("duckduckgo referrer", "https://example.com/", "https://duckduckgo.com/", "duckduckgo", "organic", Channel::OrganicSearch),
        ("bing referrer", "https://example.com/", "https://www.bing.com/search?q=x", "bing", "organic", Channel::OrganicSearch),
        ("yahoo japan referrer", "https://example.com/", "https://search.yahoo.co.jp/", "yahoo", "organic", Channel::OrganicSearch),
        ("brave search referrer", "https://example.com/", "https://search.brave.com/search?q=x", "brave", "organic", Channel::OrganicSearch),
        ("so.com referrer", "https://example.com/", "https://www.so.com/s?q=x", "so.com", "organic", Channel::OrganicSearch),
        ("organic medium", "https://example.com/?utm_source=localguide&utm_medium=organic", "", "localguide", "organic", Channel::OrganicSearch),
        // 13 Referral
        ("unknown referrer", "https://example.com/", "https://www.blog.example.org/post", "blog.example.org", "referral", Channel::Referral),
        ("notgoogle referrer", "https://example.com/", "https://notgoogle.com/", "notgoogle.com", "referral", Channel::Referral),
        ("sibling co.uk sites", "https://foo.co.uk/", "https://bar.co.uk/", "bar.co.uk", "referral", Channel::Referral),
        ("webmail is a referral", "https://example.com/", "https://mail.google.com/mail/u/0/", "mail.google.com", "referral", Channel::Referral),
        ("link medium", "https://example.com/?utm_source=partner&utm_medium=link", "", "partner", "link", Channel::Referral),
        ("empty utm falls back to referrer", "https://example.com/?utm_source=%20&utm_medium=", "https://news.ycombinator.com/", "news.ycombinator.com", "referral", Channel::Referral),
        // 14 Email
        ("email medium", "https://example.com/?utm_source=newsletter&utm_medium=email", "", "newsletter", "email", Channel::Email),
        ("e-mail source", "https://example.com/?utm_source=E-Mail&utm_medium=blast", "", "e-mail", "blast", Channel::Email),
        ("utm beats search referrer", "https://example.com/?utm_source=newsletter&utm_medium=email", "https://www.google.com/", "newsletter", "email", Channel::Email),
        // 15 Affiliates
        ("affiliate", "https://example.com/?utm_source=partnerize&utm_medium=affiliate", "", "partnerize", "affiliate", Channel::Affiliates),
        // 16 Audio
        ("audio", "https://example.com/?utm_source=podcast&utm_medium=audio", "", "podcast", "audio", Channel::Audio),
        // 17 SMS
        ("sms medium", "https://example.com/?utm_source=twilio&utm_medium=sms", "", "twilio", "sms", Channel::Sms),
        ("sms source", "https://example.com/?utm_source=SMS", "", "sms", "(not set)", Channel::Sms),
        // 18 Mobile Push Notifications
        ("web push", "https://example.com/?utm_source=onesignal&utm_medium=web_push", "", "onesignal", "web_push", Channel::MobilePushNotifications),
        ("notification medium", "https://example.com/?utm_source=app&utm_medium=notification", "", "app", "notification", Channel::MobilePushNotifications),
        ("firebase source", "https://example.com/?utm_source=firebase&utm_medium=inapp", "", "firebase", "inapp", Channel::MobilePushNotifications),
        // 19 Unassigned
        ("unknown pair", "https://example.com/?utm_source=foo&utm_medium=bar", "", "foo", "bar", Channel::Unassigned),
        ("source only", "https://example.com/?utm_source=flyer", "", "flyer", "(not set)", Channel::Unassigned),
        ("malformed query", "https://example.com/?&&=x&utm_source=fl%ZZyer&utm_medium&utm_source=other&%", "", "fl%zzyer", "(not set)", Channel::Unassigned),
    ];

    fn run(landing: &str, referrer: &str) -> Classification {
        let landing = Url::parse(landing).expect("test landing URL");
        classify(&landing, parse_referrer(referrer).as_ref())
    }

    #[test]
    fn table() {
        let failures: Vec<String> = CASES
            .iter()
            .filter_map(|&(name, landing, referrer, source, medium, channel)| {
                let got = run(landing, referrer);
                let ok = got.source == source && got.medium == medium && got.channel == channel;
                (!ok).then(|| {
                    format!(
                        "{name}: want {source} / {medium} / {channel:?}, got {} / {} / {:?}",
                        got.source, got.medium, got.channel
                    )
                })
            })
            .collect();
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    #[test]
    fn table_covers_every_channel() {
        for channel in Channel::ALL {
            assert!(
                CASES.iter().any(|c| c.5 == channel),
                "no table case for {channel:?}"
            );
        }
    }

    /// Picks one click-id field, so the test can build the expected `ClickIds`.
    type Field = fn(&mut ClickIds) -> &mut Option<String>;

    #[test]
    fn each_click_id_is_captured_and_implies_source_medium() {
        let cases: [(&str, &str, &str, Channel, Field); 7] = [
            ("gclid", "google", "cpc", Channel::PaidSearch, |c| {
                &mut c.gclid
            }),
            ("gbraid", "google", "cpc", Channel::PaidSearch, |c| {
                &mut c.gbraid
            }),
            ("wbraid", "google", "cpc", Channel::PaidSearch, |c| {
                &mut c.wbraid
            }),
            ("msclkid", "bing", "cpc", Channel::PaidSearch, |c| {
                &mut c.msclkid
            }),
            ("fbclid", "facebook", "paid", Channel::PaidSocial, |c| {
                &mut c.fbclid
            }),
            ("ttclid", "tiktok", "paid", Channel::PaidSocial, |c| {
                &mut c.ttclid
            }),
            ("li_fat_id", "linkedin", "paid", Channel::PaidSocial, |c| {
                &mut c.li_fat_id
            }),
        ];
        for (param, source, medium, channel, field) in cases {
            // Values are trimmed, and the name is matched case-insensitively.
            let got = run(
                &format!("https://example.com/?{}=%20id-123%20", param.to_uppercase()),
                "",
            );
            let mut want_ids = ClickIds::default();
            *field(&mut want_ids) = Some("id-123".into());
            assert_eq!(got.click_ids, want_ids, "{param}");
            assert_eq!(
                (got.source.as_str(), got.medium.as_str(), got.channel),
                (source, medium, channel),
                "{param}"
            );
        }
    }

    #[test]
    fn click_id_priority_and_utm_fill() {
        // gclid outranks fbclid (Facebook tags outbound links indiscriminately).
        let got = run("https://example.com/?fbclid=f&gclid=g", "");
        assert_eq!(
            (got.source.as_str(), got.medium.as_str()),
            ("google", "cpc")
        );
        assert_eq!(got.click_ids.fbclid.as_deref(), Some("f"));
        // A click id fills only the missing half; bing is a search site, and GA4 checks
        // search sites (rule 12) before the email medium (rule 14).
        let got = run("https://example.com/?utm_medium=email&msclkid=m", "");
        assert_eq!(
            (got.source.as_str(), got.medium.as_str()),
            ("bing", "email")
        );
        assert_eq!(got.channel, Channel::OrganicSearch);
        // Click ids beat a referrer.
        let got = run("https://example.com/?ttclid=t", "https://www.google.com/");
        assert_eq!(
            (got.source.as_str(), got.channel),
            ("tiktok", Channel::PaidSocial)
        );
        // ...and a same-site referrer does not hide them.
        let got = run("https://www.example.com/?gclid=g", "https://example.com/");
        assert_eq!(got.channel, Channel::PaidSearch);
    }

    #[test]
    fn utm_values_are_trimmed_and_campaign_case_kept() {
        let got = run(
            "https://example.com/?utm_source=%20News+Letter%20&utm_medium=Email&utm_campaign=+Spring_Sale+&utm_term=Red+Shoes&utm_content=Hero%20A",
            "",
        );
        assert_eq!(got.source, "news letter");
        assert_eq!(got.medium, "email");
        assert_eq!(got.campaign.as_deref(), Some("Spring_Sale"));
        assert_eq!(got.term.as_deref(), Some("Red Shoes"));
        assert_eq!(got.content.as_deref(), Some("Hero A"));
    }

    #[test]
    fn first_non_empty_utm_value_wins() {
        let got = run(
            "https://example.com/?utm_source=&utm_source=first&utm_source=second&utm_medium=cpc",
            "",
        );
        assert_eq!(got.source, "first");
    }

    #[test]
    fn empty_utm_values_are_absent() {
        let got = run(
            "https://example.com/?utm_source=google&utm_medium=&utm_campaign=%20&utm_term=&utm_content",
            "",
        );
        assert_eq!(got.medium, "(not set)");
        assert_eq!((got.campaign, got.term, got.content), (None, None, None));
        assert_eq!(got.channel, Channel::OrganicSearch);
    }

    #[test]
    fn malformed_queries_do_not_panic() {
        for q in [
            "?",
            "?&&&",
            "?=",
            "?utm_source",
            "?utm_source=%",
            "?utm_source=%E0%A4%A",
            "?utm_medium=%FF%FE&gclid=%00",
            "?utm_source=a=b=c&utm_medium==cpc",
            "?utm_campaign=%zzshop",
        ] {
            let got = run(&format!("https://example.com/{q}"), "");
            assert!(!got.source.is_empty() && !got.medium.is_empty(), "{q}");
        }
        // Only the first `=` separates name and value.
        let got = run("https://example.com/?utm_source=a=b&utm_medium==cpc", "");
        assert_eq!((got.source.as_str(), got.medium.as_str()), ("a=b", "=cpc"));
        assert_eq!(got.channel, Channel::PaidOther);
    }

    #[test]
    fn unusable_referrers_count_as_none() {
        assert_eq!(parse_referrer(""), None);
        assert_eq!(parse_referrer("   "), None);
        assert_eq!(parse_referrer("not a url"), None);
        assert_eq!(parse_referrer("about:blank"), None);
        assert!(parse_referrer("https://t.co/x").is_some());
        let got = run("https://example.com/", "about:blank");
        assert_eq!(got.channel, Channel::Direct);
    }

    #[test]
    fn referrer_host_is_normalised() {
        let got = run("https://example.com/", "https://WWW.Some-Blog.IO./post");
        assert_eq!(got.source, "some-blog.io");
        let got = run("https://example.com/", "http://127.0.0.1:8080/");
        assert_eq!(
            (got.source.as_str(), got.channel),
            ("127.0.0.1", Channel::Referral)
        );
    }

    #[test]
    fn shop_campaign_regex_semantics() {
        for (campaign, want) in [
            ("spring_shop", true),
            ("Spring_Shop", true),
            ("shop", true),
            ("shopify_promo", true),
            ("eshop", true),
            ("summer-shopping", true),
            ("bishopping", true),
            ("2024shop", true),
            ("workshop", false),
            ("WORKSHOP", false),
            ("bishop", false),
            ("brand", false),
        ] {
            let got = channel_for("newsletter", "cpc", Some(campaign)) == Channel::PaidShopping;
            assert_eq!(got, want, "{campaign}");
        }
    }

    #[test]
    fn channel_for_is_case_insensitive_and_ordered() {
        assert_eq!(channel_for("Google", "CPC", None), Channel::PaidSearch);
        assert_eq!(channel_for("(DIRECT)", "(NOT SET)", None), Channel::Direct);
        assert_eq!(
            channel_for("google", "cpc", Some("Cross-Network")),
            Channel::CrossNetwork
        );
        // Cross-network outranks Direct only when source/medium are not direct.
        assert_eq!(
            channel_for("(direct)", "(none)", Some("cross-network")),
            Channel::Direct
        );
        // Social before video before search for organic traffic.
        assert_eq!(
            channel_for("facebook", "video", None),
            Channel::OrganicSocial
        );
        assert_eq!(
            channel_for("youtube.com", "organic", None),
            Channel::OrganicVideo
        );
        assert_eq!(channel_for("e mail", "x", None), Channel::Email);
        assert_eq!(
            channel_for("x", "mobile_app", None),
            Channel::MobilePushNotifications
        );
    }

    #[test]
    fn host_matching() {
        let yes = [
            ("google.com", "google"),
            ("www.google.com", "google"),
            ("google.co.uk", "google"),
            ("www.google.de", "google"),
            ("news.google.com", "google"),
            ("www.google.com.au", "google"),
            ("search.yahoo.co.jp", "yahoo"),
            ("WWW.Google.COM.", "google"),
            ("t.co", "t.co"),
            ("www.t.co", "t.co"),
            ("x.com", "x.com"),
            ("mobile.x.com", "x.com"),
            ("lnkd.in", "lnkd.in"),
            ("shopping.google.com", "shopping.google.com"),
            ("mastodon.social", "mastodon"),
        ];
        let no = [
            ("notgoogle.com", "google"),
            ("googleusercontent.com", "google"),
            ("google.evil.com", "google"),
            ("www.google.evil.co.uk", "google"),
            ("reddit.com", "t.co"),
            ("microsoft.co", "t.co"),
            ("t.co.uk", "t.co"),
            ("box.com", "x.com"),
            ("x.company.com", "x.com"),
            ("google.com", "shopping.google.com"),
            ("ig.com", "ig"),
            ("google", "google"),
            ("", "google"),
            ("google.com", ""),
        ];
        for (host, entry) in yes {
            assert!(host_matches(host, entry), "{host} should match {entry}");
        }
        for (host, entry) in no {
            assert!(
                !host_matches(host, entry),
                "{host} should not match {entry}"
            );
        }
    }

    #[test]
    fn source_values_match_lists() {
        assert!(is_listed("fb", SOCIAL_SITES));
        assert!(is_listed("ig", SOCIAL_SITES));
        assert!(is_listed("facebook.com", SOCIAL_SITES));
        assert!(is_listed("l.instagram.com", SOCIAL_SITES));
        assert!(!is_listed("ig.com", SOCIAL_SITES));
        assert!(!is_listed("facebook ads", SOCIAL_SITES));
        assert!(!is_listed("notgoogle.com", SEARCH_SITES));
    }

    #[test]
    fn registrable_domains() {
        for (host, want) in [
            ("example.com", "example.com"),
            ("www.example.com", "example.com"),
            ("a.b.example.com", "example.com"),
            ("www.example.co.uk", "example.co.uk"),
            ("shop.example.com.au", "example.com.au"),
            ("co.uk", "co.uk"),
            ("t.co", "t.co"),
            ("www.t.co", "t.co"),
            ("localhost", "localhost"),
            ("10.0.0.1", "10.0.0.1"),
            ("[::1]", "[::1]"),
            ("example.com.", "example.com"),
        ] {
            assert_eq!(registrable_domain(host), want, "{host}");
        }
    }

    #[test]
    fn same_site_heuristic() {
        assert!(same_site("www.example.com", "shop.example.com"));
        assert!(same_site("Example.com", "www.example.COM"));
        assert!(same_site("example.co.uk", "blog.example.co.uk"));
        assert!(!same_site("foo.co.uk", "bar.co.uk"));
        assert!(!same_site("example.com", "example.org"));
        assert!(!same_site("10.0.0.1", "10.0.0.2"));
        assert!(!same_site("", ""));
    }

    #[test]
    fn channel_names_round_trip() {
        for channel in Channel::ALL {
            assert_eq!(Channel::parse(channel.as_str()), Some(channel));
            assert_eq!(
                Channel::parse(&channel.as_str().to_uppercase()),
                Some(channel)
            );
            let snake = channel.as_str().to_lowercase().replace([' ', '-'], "_");
            assert_eq!(Channel::parse(&snake), Some(channel), "{snake}");
            assert_eq!(channel.to_string(), channel.as_str());
        }
        assert_eq!(Channel::parse("cross-network"), Some(Channel::CrossNetwork));
        assert_eq!(
            Channel::parse(" mobile_push_notifications "),
            Some(Channel::MobilePushNotifications)
        );
        assert_eq!(Channel::parse("sms"), Some(Channel::Sms));
        assert_eq!(Channel::parse("paid"), None);
        assert_eq!(Channel::parse(""), None);
        let names: std::collections::HashSet<_> = Channel::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), 19);
    }

    #[test]
    fn list_entries_are_tidy() {
        let lists = [
            SEARCH_SITES,
            SOCIAL_SITES,
            VIDEO_SITES,
            SHOPPING_SITES,
            WEBMAIL_HOSTS,
        ];
        for entry in lists.iter().flat_map(|l| l.iter()) {
            assert_eq!(*entry, entry.trim().to_lowercase(), "{entry:?}");
            assert!(!entry.is_empty());
        }
        // A brand in two category lists would make the later one unreachable.
        let all: Vec<&str> = lists[..4].iter().flat_map(|l| l.iter().copied()).collect();
        let unique: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(unique.len(), all.len(), "duplicate list entry");
    }

    #[test]
    fn canonical_names_are_listed() {
        // So a stored canonical source re-groups to the same channel.
        let lists = [SEARCH_SITES, SOCIAL_SITES, VIDEO_SITES, SHOPPING_SITES];
        for (pattern, name) in CANONICAL_SOURCES {
            assert!(
                lists.iter().any(|l| is_listed(name, l)),
                "canonical name {name:?} is in no list"
            );
            assert!(
                lists.iter().any(|l| l.contains(pattern)),
                "canonical pattern {pattern:?} is in no list"
            );
        }
    }
}

/// Fuzzing with proptest: arbitrary landing URLs, queries and referrers never panic, and what
/// comes out is the stored form (lowercase, trimmed, re-groupable to the same channel).
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Inputs per property; `BENCHMARKS.md` records the total.
    const CASES: u32 = 2_000;

    fn query_key() -> impl Strategy<Value = String> {
        let mut known = vec![
            "utm_source",
            "utm_medium",
            "utm_campaign",
            "utm_term",
            "utm_content",
            "UTM_Source",
            " utm_medium ",
        ];
        known.extend(crate::storage::CLICK_ID_COLUMNS);
        prop_oneof![
            prop::sample::select(known).prop_map(str::to_owned),
            ".{0,12}",
        ]
    }

    fn query_value() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "google",
                "CPC",
                "facebook",
                "paid_social",
                "display",
                "e-mail",
                "spring_shop",
                "PMax_Cross-Network",
                "(direct)",
                "%",
                "%zz",
                "%C3%28",
                "+",
                " ",
                "",
            ])
            .prop_map(str::to_owned),
            any::<String>(),
        ]
    }

    /// A query string written raw (not encoded), so broken escapes and odd characters reach
    /// the parser as a page could send them.
    fn raw_query() -> impl Strategy<Value = String> {
        prop::collection::vec((query_key(), query_value()), 0..6).prop_map(|pairs| {
            pairs
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&")
        })
    }

    fn host() -> impl Strategy<Value = String> {
        prop_oneof![
            "(www\\.)?[a-z0-9-]{1,10}(\\.[a-z]{2,4}){1,2}\\.?",
            prop::sample::select(vec![
                "www.google.co.uk",
                "t.co",
                "m.facebook.com",
                "mail.google.com",
                "127.0.0.1",
                "[::1]",
                "xn--bcher-kva.de",
                "co.uk",
            ])
            .prop_map(str::to_owned),
        ]
    }

    fn referrer() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            host().prop_map(|h| format!("https://{h}/path")),
            any::<String>(),
            "[a-z]{1,6}://.{0,30}",
        ]
    }

    fn trimmed_non_empty(v: &Option<String>) -> bool {
        v.as_deref().is_none_or(|v| !v.is_empty() && v.trim() == v)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(CASES))]

        #[test]
        fn any_visit_classifies_into_the_stored_form(
            landing_host in host(),
            query in raw_query(),
            referrer in referrer(),
        ) {
            let Ok(landing) = Url::parse(&format!("https://{landing_host}/p?{query}")) else {
                return Ok(());
            };
            let referrer = parse_referrer(&referrer);
            if let Some(r) = &referrer {
                prop_assert!(r.host_str().is_some_and(|h| !h.is_empty()));
            }
            let c = classify(&landing, referrer.as_ref());
            for value in [&c.source, &c.medium] {
                prop_assert!(!value.is_empty());
                prop_assert_eq!(value, &value.to_lowercase());
            }
            for v in [&c.campaign, &c.term, &c.content, &c.click_ids.gclid, &c.click_ids.fbclid] {
                prop_assert!(trimmed_non_empty(v), "{:?}", v);
            }
            // Reports re-group stored values: they must land in the same channel.
            prop_assert_eq!(channel_for(&c.source, &c.medium, c.campaign.as_deref()), c.channel);
            prop_assert_eq!(Channel::parse(c.channel.as_str()), Some(c.channel));
        }

        #[test]
        fn internal_navigation_without_tracking_is_direct(landing_host in host(), sub in "[a-z]{1,8}") {
            let Ok(landing) = Url::parse(&format!("https://{landing_host}/")) else {
                return Ok(());
            };
            let own = landing.host_str().unwrap_or_default().to_owned();
            // A public suffix (`co.uk`) is nobody's site: its subdomains are other sites.
            prop_assume!(!matches!(own.split('.').collect::<Vec<_>>().as_slice(),
                [sld, tld] if tld.len() == 2 && SHORT_SLDS.contains(sld)));
            let referrer = parse_referrer(&format!("https://{sub}.{own}/page"));
            let c = classify(&landing, referrer.as_ref());
            prop_assert_eq!((c.source.as_str(), c.channel), (DIRECT, Channel::Direct));
        }

        #[test]
        fn host_helpers_take_any_text(a in prop_oneof![host(), any::<String>()], b in any::<String>()) {
            let trimmed = a.trim_end_matches('.');
            prop_assert!(trimmed.ends_with(registrable_domain(&a)));
            prop_assert_eq!(same_site(&a, &b), same_site(&b, &a));
            prop_assert_eq!(same_site(&a, &a), !trimmed.is_empty());
            let _ = host_matches(&a, &b);
            let _ = is_listed(&a.to_lowercase(), SEARCH_SITES);
            let _ = Channel::parse(&b);
        }
    }
}
