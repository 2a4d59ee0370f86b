//! Free-mail providers: anyone can have an address there, so such a domain
//! never stands for an organisation, and two addresses there belong to the
//! same person only when they are the same address.

/// Registrable domains of well-known free-mail providers, Japanese carriers
/// and ISPs included, in lower-case ASCII (their keys). Extended by
/// `[display_name] freemail_domains`.
pub const FREEMAIL_DOMAINS: &[&str] = &[
    // International
    "gmail.com",
    "googlemail.com",
    "outlook.com",
    "outlook.jp",
    "hotmail.com",
    "hotmail.co.jp",
    "hotmail.co.uk",
    "live.com",
    "live.jp",
    "msn.com",
    "yahoo.com",
    "yahoo.co.uk",
    "ymail.com",
    "aol.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "protonmail.com",
    "proton.me",
    "pm.me",
    "gmx.com",
    "gmx.net",
    "gmx.de",
    "web.de",
    "mail.com",
    "mail.ru",
    "yandex.ru",
    "yandex.com",
    "zoho.com",
    "tutanota.com",
    "fastmail.com",
    "qq.com",
    "163.com",
    "126.com",
    "naver.com",
    // Japan: portals and mobile carriers
    "yahoo.co.jp",
    "ybb.ne.jp",
    "docomo.ne.jp",
    "ezweb.ne.jp",
    "au.com",
    "softbank.ne.jp",
    "i.softbank.jp",
    "ymobile.ne.jp",
    "rakuten.jp",
    "excite.co.jp",
    "goo.jp",
    // Japan: consumer ISPs
    "nifty.com",
    "biglobe.ne.jp",
    "ocn.ne.jp",
    "so-net.ne.jp",
    "plala.or.jp",
    "dion.ne.jp",
    "odn.ne.jp",
    "zaq.ne.jp",
    "jcom.home.ne.jp",
    "eonet.ne.jp",
    "infoseek.jp",
];

/// True when `domain` (any host name, in any form IDNA reads) is a
/// free-mail provider's or under one, built-in or listed in `extra`.
pub fn is_freemail(domain: &str, extra: &[String]) -> bool {
    // A domain IDNA rejects is no one's subdomain.
    let Some(key) = super::valid_key(domain) else {
        return false;
    };
    FREEMAIL_DOMAINS.iter().any(|d| super::key_within(&key, d))
        || extra.iter().any(|d| super::key_within(&key, d))
}
