//! The pages and their static files, embedded in the binary: no separate
//! web server, nothing fetched from the internet.
//!
//! Every file is served under a name that carries a hash of its content
//! (`/assets/js/console.3fa2b1c9d0.js`) with a year-long, immutable cache
//! header: a browser never asks twice for the same bytes, and a new build
//! changes the names. The pages themselves (`/console/`, `/quote/`) are
//! small, never cached without asking, and name the hashed files; scripts
//! import each other by bare names (`farm/common.js`, `three`) that the
//! page's import map resolves to the hashed ones, so a change to one module
//! changes only its own name. A Content-Security-Policy allows scripts from
//! this origin only (and the import map, by its hash).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use base64::Engine;
use sha2::{Digest, Sha256};
use utoipa_axum::router::OpenApiRouter;

use crate::error::AppError;
use crate::state::AppState;

/// A file as built into the binary: its path under `api/web/` and bytes.
macro_rules! embedded {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/", $path)) as &[u8])),*]
    };
}

/// Every static file the pages use.
const FILES: &[(&str, &[u8])] = embedded![
    "app.css",
    "js/common.js",
    "js/i18n.js",
    "js/viewer.js",
    "js/stl.js",
    "js/console.js",
    "js/quote.js",
    "vendor/three/three.module.min.js",
    "vendor/three/three.core.min.js",
    "vendor/three/OrbitControls.js",
    "vendor/three/LICENSE",
];

/// Bare import names and the files they stand for.
const IMPORTS: &[(&str, &str)] = &[
    ("three", "vendor/three/three.module.min.js"),
    ("three/addons/OrbitControls.js", "vendor/three/OrbitControls.js"),
    ("farm/common.js", "js/common.js"),
    ("farm/i18n.js", "js/i18n.js"),
    ("farm/viewer.js", "js/viewer.js"),
    ("farm/stl.js", "js/stl.js"),
];

const CONSOLE_PAGE: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/console.html"));
const QUOTE_PAGE: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/quote.html"));

/// One file, ready to serve.
#[derive(Debug)]
struct Asset {
    bytes: &'static [u8],
    content_type: &'static str,
}

/// The files under their hashed names, and the two pages.
#[derive(Debug)]
pub struct Catalogue {
    /// `js/console.3fa2b1c9d0.js` → the file.
    by_hashed: HashMap<String, Asset>,
    /// `js/console.js` → `/assets/js/console.3fa2b1c9d0.js`.
    urls: HashMap<&'static str, String>,
    console: String,
    quote: String,
    /// The pages' Content-Security-Policy.
    policy: String,
}

static CATALOGUE: LazyLock<Catalogue> = LazyLock::new(Catalogue::build);

/// The embedded files and pages (built once, on first use).
pub fn catalogue() -> &'static Catalogue {
    &CATALOGUE
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("html") => "text/html; charset=utf-8",
        Some("json") => "application/json",
        _ => "text/plain; charset=utf-8",
    }
}

/// `js/console.js` with a hash of `bytes` before its extension.
fn hashed_name(path: &str, bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let hash: String = digest[..5].iter().map(|b| format!("{b:02x}")).collect();
    let (dir, file) = path.rsplit_once('/').map_or(("", path), |(d, f)| (d, f));
    let hashed = match file.split_once('.') {
        Some((stem, ext)) => format!("{stem}.{hash}.{ext}"),
        None => format!("{file}.{hash}"),
    };
    if dir.is_empty() { hashed } else { format!("{dir}/{hashed}") }
}

impl Catalogue {
    fn build() -> Self {
        let mut by_hashed = HashMap::new();
        let mut urls = HashMap::new();
        for &(path, bytes) in FILES {
            let hashed = hashed_name(path, bytes);
            urls.insert(path, format!("/assets/{hashed}"));
            by_hashed.insert(hashed, Asset { bytes, content_type: content_type(path) });
        }
        let mut imports = serde_json::Map::new();
        for &(name, path) in IMPORTS {
            imports.insert(name.into(), urls[path].clone().into());
        }
        // three's module imports its core by a relative name, which resolves
        // to the unhashed path beside it.
        imports.insert(
            "/assets/vendor/three/three.core.min.js".into(),
            urls["vendor/three/three.core.min.js"].clone().into(),
        );
        let import_map = serde_json::json!({ "imports": imports }).to_string();
        let map_hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(import_map.as_bytes()));
        let policy = format!(
            "default-src 'self'; script-src 'self' 'sha256-{map_hash}'; style-src 'self'; img-src 'self' data: blob:; \
             connect-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; \
             form-action 'self'"
        );
        let fill = |template: &str| {
            let mut page = template.replace("{{importmap}}", &import_map);
            for (path, url) in &urls {
                page = page.replace(&format!("{{{{asset:{path}}}}}"), url);
            }
            page
        };
        Self { console: fill(CONSOLE_PAGE), quote: fill(QUOTE_PAGE), by_hashed, urls, policy }
    }

    /// The hashed URL of a file, as the pages name it.
    pub fn url(&self, path: &str) -> Option<&str> {
        self.urls.get(path).map(String::as_str)
    }

    /// The console's HTML, with its assets' hashed names filled in.
    pub fn console_page(&self) -> &str {
        &self.console
    }

    pub fn quote_page(&self) -> &str {
        &self.quote
    }
}

pub(crate) fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .route("/console/", get(|| async { page(&catalogue().console) }))
        .route("/quote/", get(|| async { page(&catalogue().quote) }))
        .route("/console", get(|| async { Redirect::permanent("/console/") }))
        .route("/quote", get(|| async { Redirect::permanent("/quote/") }))
        .route("/assets/{*path}", get(asset))
}

fn security_headers() -> [(HeaderName, HeaderValue); 3] {
    [
        (HeaderName::from_static("x-content-type-options"), HeaderValue::from_static("nosniff")),
        (HeaderName::from_static("referrer-policy"), HeaderValue::from_static("no-referrer")),
        (HeaderName::from_static("x-frame-options"), HeaderValue::from_static("DENY")),
    ]
}

fn page(html: &'static str) -> Response {
    let policy = HeaderValue::from_str(&catalogue().policy).expect("the policy is ASCII");
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
        // Small, and it names the current assets: always ask.
        (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (HeaderName::from_static("content-security-policy"), policy),
    ];
    (headers, security_headers(), html).into_response()
}

async fn asset(Path(path): Path<String>) -> Response {
    match catalogue().by_hashed.get(&path) {
        Some(asset) => {
            let headers = [
                (CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
                (CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable")),
            ];
            (StatusCode::OK, headers, security_headers(), asset.bytes).into_response()
        }
        None => AppError::NotFound { what: "asset", id: path }.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_has_a_hashed_name_and_the_pages_name_only_hashed_files() {
        let catalogue = catalogue();
        assert_eq!(catalogue.by_hashed.len(), FILES.len(), "two files hash to one name");
        assert_eq!(hashed_name("js/a.js", b"x"), hashed_name("js/a.js", b"x"));
        assert_ne!(hashed_name("js/a.js", b"x"), hashed_name("js/a.js", b"y"));
        assert!(hashed_name("js/console.js", b"x").starts_with("js/console."));
        for page in [catalogue.console_page(), catalogue.quote_page()] {
            assert!(!page.contains("{{"), "a placeholder is left: {page}");
            let three = catalogue.url("vendor/three/three.module.min.js").unwrap();
            assert!(page.contains(&format!("\"three\":\"{three}\"")), "no import map");
        }
        assert!(catalogue.console_page().contains(catalogue.url("js/console.js").unwrap()));
        assert!(catalogue.quote_page().contains(catalogue.url("js/quote.js").unwrap()));
    }

    #[test]
    fn both_languages_have_every_message() {
        let text = std::str::from_utf8(FILES.iter().find(|(p, _)| *p == "js/i18n.js").unwrap().1).unwrap();
        let (en, ru) = text.split_once("\n  ru: {").expect("an English and a Russian block");
        let keys = |block: &str| {
            let mut keys: Vec<String> = block
                .lines()
                .filter_map(|line| line.trim().strip_prefix('"')?.split_once("\":").map(|(k, _)| k.to_string()))
                .collect();
            keys.sort();
            keys
        };
        let (en, ru) = (keys(en), keys(ru));
        assert!(en.len() > 50, "{en:?}");
        assert_eq!(en, ru, "a message missing in one language");
    }

    #[test]
    fn no_page_or_script_reaches_outside_the_farm() {
        // The pages must work with nothing fetched from the internet.
        let catalogue = catalogue();
        let ours = FILES.iter().filter(|(path, _)| !path.starts_with("vendor/"));
        let texts = ours.map(|(path, bytes)| (path.to_string(), String::from_utf8_lossy(bytes).into_owned())).chain([
            ("console.html".into(), catalogue.console.clone()),
            ("quote.html".into(), catalogue.quote.clone()),
        ]);
        for (path, text) in texts {
            for scheme in ["http://", "https://", "//cdn", "//fonts."] {
                assert!(!text.contains(scheme), "{path} names `{scheme}`");
            }
        }
    }
}
