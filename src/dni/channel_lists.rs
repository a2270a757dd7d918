//! Source lists used by the GA4 default channel group rules.
//!
//! GA4 decides "source is a search / social / video / shopping site" against lists that
//! Google publishes with its default channel group documentation (the "source categories"
//! spreadsheet linked from Analytics Help answer 9756891). We keep the main entries here as
//! plain data so they can be reviewed and extended without touching the rules.
//!
//! How an entry is matched (see `classify::host_matches`), always case-insensitively:
//! - Every entry matches a source value that equals it exactly (`utm_source=fb`).
//! - An entry containing a dot is a host suffix: it matches that host and its subdomains
//!   (`t.co` matches `t.co` and `www.t.co`, never `reddit.com` or `microsoft.co`).
//! - An entry without a dot, at least three characters long, is a brand: it matches any host
//!   whose registrable domain starts with that label (`google` matches `google.com`,
//!   `www.google.co.uk`, `news.google.com`, not `notgoogle.com` or `google.evil.com`).
//! - Shorter dotless entries (`fb`, `ig`, `vk`) are utm_source aliases only, so that
//!   `ig.com` is not mistaken for Instagram; list their hosts separately (`vk.com`).
//!
//! Entries are lowercase, and a brand should appear once across the lists so the first
//! matching rule in the channel table stays meaningful.

/// Search engines (GA4 "search sites"). A referrer from one of these gets medium `organic`.
pub const SEARCH_SITES: &[&str] = &[
    "google",
    "bing",
    "yahoo",
    "duckduckgo",
    "baidu",
    "yandex",
    "ya.ru",
    "ecosia",
    "naver",
    "daum",
    "ask",
    "aol",
    "startpage",
    "qwant",
    "seznam",
    "sogou",
    "so.com",
    "brave",
    "search.brave.com",
    "kagi",
    "coccoc",
    "petalsearch",
];

/// Social networks (GA4 "social sites"), including GA4's short utm_source forms.
pub const SOCIAL_SITES: &[&str] = &[
    "facebook",
    "fb",
    "fb.me",
    "messenger",
    "instagram",
    "ig",
    "linkedin",
    "lnkd.in",
    "twitter",
    "x.com",
    "t.co",
    "pinterest",
    "pin.it",
    "reddit",
    "redd.it",
    "tiktok",
    "snapchat",
    "quora",
    "tumblr",
    "vk",
    "vk.com",
    "whatsapp",
    "wa.me",
    "telegram",
    "t.me",
    "threads",
    "mastodon",
    "nextdoor",
    "discord",
    "bsky.app",
    "bluesky",
    "weibo",
    "line.me",
    "medium.com",
    "meetup",
];

/// Video platforms (GA4 "video sites").
pub const VIDEO_SITES: &[&str] = &[
    "youtube",
    "youtu.be",
    "vimeo",
    "twitch",
    "dailymotion",
    "wistia",
    "rumble",
    "bilibili",
    "youku",
    "iqiyi",
    "netflix",
    "hulu",
    "disneyplus",
    "ted.com",
];

/// Marketplaces and shopping surfaces (GA4 "shopping sites").
pub const SHOPPING_SITES: &[&str] = &[
    "amazon",
    "amzn.to",
    "ebay",
    "etsy",
    "walmart",
    "shopify",
    "shop.app",
    "alibaba",
    "aliexpress",
    "rakuten",
    "mercadolibre",
    "google shopping",
    "shopping.google.com",
    "igshopping",
    "shopping.yahoo.com",
    "shopping.naver.com",
];

/// Webmail hosts. They live on search-engine domains (mail.google.com) but a visit from them
/// is a referral, not organic search, so they are checked before `SEARCH_SITES`.
pub const WEBMAIL_HOSTS: &[&str] = &[
    "mail.google.com",
    "mail.yahoo.com",
    "mail.aol.com",
    "mail.yandex.ru",
    "mail.naver.com",
    "outlook.live.com",
    "outlook.office.com",
    "outlook.office365.com",
];

/// Canonical source names for referrer hosts, as `(pattern, name)`; first match wins, so more
/// specific patterns come first. Patterns use the same matching as the lists above. A listed
/// site without an entry here is named after the list entry it matched (`news.google.com` ->
/// `google`); every name here is itself listed, so a stored source re-classifies the same.
pub const CANONICAL_SOURCES: &[(&str, &str)] = &[
    ("shopping.google.com", "google shopping"),
    ("search.brave.com", "brave"),
    ("ya.ru", "yandex"),
    ("t.co", "twitter"),
    ("x.com", "twitter"),
    ("lnkd.in", "linkedin"),
    ("fb.me", "facebook"),
    ("pin.it", "pinterest"),
    ("redd.it", "reddit"),
    ("vk.com", "vk"),
    ("wa.me", "whatsapp"),
    ("t.me", "telegram"),
    ("bsky.app", "bluesky"),
    ("youtu.be", "youtube"),
    ("amzn.to", "amazon"),
];
