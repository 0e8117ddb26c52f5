//! The redaction function against generated credentials in every URL shape
//! providers and clients use: the password never survives, whether it is
//! known to the caller or not.

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use proptest::prelude::*;
use tunerpool_upstream::redact::{redact_text, redact_url};

/// Every shape a credential-carrying URL takes, with `u` and `p` filled in as
/// clients and panels encode them.
fn shapes(u: &str, p: &str) -> Vec<String> {
    let seg = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
    let form = |pairs: &[(&str, &str)]| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
        q.finish()
    };
    let mut userinfo = url::Url::parse("http://provider.example:8080/list.m3u").unwrap();
    userinfo.set_username(u).unwrap();
    userinfo.set_password(Some(p)).unwrap();
    let (su, sp) = (seg(u), seg(p));
    let mut out = vec![
        userinfo.to_string(),
        format!("http://h/get.php?{}", form(&[("username", u), ("password", p), ("type", "m3u_plus")])),
        format!("http://h/player_api.php?{}", form(&[("username", u), ("password", p), ("action", "x")])),
        format!("http://h/xmltv.php?{}", form(&[("password", p), ("username", u)])),
        format!("http://h/stream?{}", form(&[("token", p)])),
        format!("http://h/hdhr/{su}/{sp}"),
        format!("http://h:1/{su}/{sp}/12345"),
        format!("/{su}/{sp}/12345.ts"),
        format!("/get.php?{}", form(&[("username", u), ("password", p)])),
    ];
    for kind in ["live", "movie", "series", "hls"] {
        out.push(format!("http://h/{kind}/{su}/{sp}/5.ts"));
        out.push(format!("/{kind}/{su}/{sp}/5/1.ts"));
    }
    out.push(format!("http://h/timeshift/{su}/{sp}/60/2025-01-01:20-00/5.ts"));
    out
}

/// The forms a password takes in a URL.
fn forms(p: &str) -> Vec<String> {
    let seg = utf8_percent_encode(p, NON_ALPHANUMERIC).to_string();
    let form: String = url::form_urlencoded::byte_serialize(p.as_bytes()).collect();
    let mut userinfo = url::Url::parse("http://h/").unwrap();
    userinfo.set_password(Some(p)).unwrap();
    let info = userinfo.password().unwrap().to_string();
    vec![p.to_string(), seg.replace("%2F", "%2f"), seg, form, info]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn the_password_never_survives(
        // Not `.` or `..`: such segments cannot travel in a URL path at all.
        user in "[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,11}",
        pass in "[a-zA-Z0-9/+%&=#?@:;$ !*()~.-]{4,20}",
    ) {
        // A marker makes the password recognisable in any output.
        let pass = format!("Zq{pass}");
        for url in shapes(&user, &pass) {
            for secrets in [&[][..], &[pass.as_str()][..]] {
                let shown = redact_url(&url, secrets);
                // Messages hold absolute URLs (request targets are redacted as such, see `redact_url`).
                let in_text = if url.starts_with("http") {
                    redact_text(&format!("failed: {url} (retrying)"), secrets)
                } else {
                    String::new()
                };
                for f in forms(&pass) {
                    prop_assert!(!shown.contains(&f), "{url} -> {shown} still holds {f}");
                    prop_assert!(!in_text.contains(&f), "{url} -> {in_text} still holds {f}");
                }
                prop_assert!(shown.contains("***"), "{url} -> {shown}");
            }
        }
    }
}
