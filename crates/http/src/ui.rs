//! The web UI: plain HTML, CSS and JavaScript modules from `crates/http/ui/`,
//! embedded in the binary at build time (no Node, no build step, nothing to
//! install beside the binary). The pages call `/api/v1` with the admin token
//! the user typed on the login screen; these files themselves are public.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset { name: $name, content_type: $type, body: include_str!(concat!("../ui/", $name)) }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("live.js", JS),
    asset!("dashboard.js", JS),
    asset!("providers.js", JS),
    asset!("accounts.js", JS),
    asset!("sessions.js", JS),
    asset!("channels.js", JS),
    asset!("users.js", JS),
    asset!("history.js", JS),
    // uPlot 1.6.32 (npm `uplot`, dist/), MIT: the history charts.
    asset!("uPlot.iife.min.js", JS),
    asset!("uPlot.min.css", "text/css; charset=utf-8"),
    asset!("uPlot.LICENSE", "text/plain; charset=utf-8"),
];

/// Scripts only from here; data only from the API; pictures (channel logos)
/// from anywhere; no inline script, no framing.
const CSP: &str = "default-src 'self'; img-src 'self' data: http: https:; style-src 'self'; script-src 'self'; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// A weak validator: FNV-1a of the file (the files are fixed per build).
fn etag(body: &str) -> String {
    let hash = body.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    format!("\"{hash:016x}\"")
}

fn serve(asset: &Asset, headers: &HeaderMap) -> Response {
    let tag = etag(asset.body);
    let mut out = if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(tag.as_str()) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response()
    };
    let h = out.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, v);
    }
    out
}

/// `GET /`: the single page.
pub(crate) async fn index(headers: HeaderMap) -> Response {
    serve(&ASSETS[0], &headers)
}

/// `GET /ui/{file}`: a stylesheet, script or icon.
pub(crate) async fn file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => serve(a, &headers),
        None => (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("no UI file {name:?}\n"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::ASSETS;

    #[test]
    fn every_module_import_is_embedded() {
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            for line in a.body.lines().filter(|l| l.trim_start().starts_with("import ")) {
                let target = line.split(['"', '\'']).nth(1).unwrap_or_default();
                let name = target.trim_start_matches("./");
                assert!(ASSETS.iter().any(|x| x.name == name), "{}: imports {target}, which is not embedded", a.name);
            }
        }
        let index = ASSETS[0].body;
        for a in ASSETS.iter().skip(1).filter(|a| !a.name.ends_with(".js") || a.name == "app.js") {
            assert!(index.contains(&format!("/ui/{}", a.name)), "index.html does not load {}", a.name);
        }
    }
}
