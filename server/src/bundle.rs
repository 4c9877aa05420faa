//! The browser bundle (`/pkg`: the wasm, its JavaScript glue, the style
//! sheet), served under an address that changes with its content, so a
//! browser may keep it for a year without asking again.
//!
//! The version is a digest of the files, taken once at start-up; pages ask
//! for `/pkg/<version>/…` (Leptos puts `site_pkg_dir` into its hydration
//! scripts, the shell into the style sheet's link). Hashing here rather
//! than with cargo-leptos's `hash-files` keeps the build as it is (that
//! option makes the bundle and the server build one after the other) and
//! the binary free of a hash file that would have to travel beside it in
//! every deployment.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tower::ServiceExt;
use tower_http::services::ServeDir;

/// A year: the longest lifetime caches are asked to honour.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

#[derive(Clone, Debug)]
pub struct Bundle {
    /// The directory's files, with the precompressed copies when they may
    /// be sent (built once: every request for the bundle goes through it).
    files: ServeDir,
    version: String,
    /// The chunks each group of pages needs (`cargo leptos --split`), by
    /// the group's lazy function: what pages ask the browser to preload.
    chunks: Arc<HashMap<String, Vec<String>>>,
}

impl Bundle {
    /// The bundle in `site_root/pkg`, its version the digest of every file
    /// there (names and contents, in name order). An empty or missing
    /// directory still gets a version (`check-config` is where a missing
    /// site is reported).
    pub fn find(site_root: &Path) -> Self {
        let dir = site_root.join("pkg");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|entry| entry.path())
                    .filter(|path| path.is_file())
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        let mut digest = Sha256::new();
        for file in &files {
            if let (Some(name), Ok(bytes)) = (file.file_name(), std::fs::read(file)) {
                digest.update(name.as_encoded_bytes());
                digest.update((bytes.len() as u64).to_le_bytes());
                digest.update(&bytes);
            }
        }
        let version = digest
            .finalize()
            .iter()
            .take(8)
            .map(|byte| format!("{byte:02x}"))
            .collect();
        // The `.br`/`.gz` copies (made at build time by
        // `scripts/precompress.mjs`) are sent only while none is older than
        // the file it stands for.
        let chunks = Arc::new(read_chunk_manifest(&dir.join(CHUNK_MANIFEST)));
        let precompressed = copies_are_current(&files);
        let files = ServeDir::new(&dir);
        let files = if precompressed {
            files.precompressed_br().precompressed_gzip()
        } else {
            files
        };
        Self {
            files,
            version,
            chunks,
        }
    }

    /// What the pages need to name the chunks of their group for preloading.
    pub fn chunk_preloads(&self) -> app::ChunkPreloads {
        app::ChunkPreloads {
            pkg_dir: self.pkg_dir(),
            by_group: self.chunks.clone(),
        }
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    /// The site-relative directory pages load the bundle from.
    pub fn pkg_dir(&self) -> String {
        format!("pkg/{}", self.version)
    }

    /// `/pkg/<version>/…`, kept for a year when the version is this one's;
    /// another version (a page from an instance running another build, in
    /// the middle of an upgrade) gets today's files, revalidated every
    /// time. `/pkg/…` without a version: revalidated every time (with a
    /// `Last-Modified` that is honoured, so a repeat visit is a bodiless
    /// 304).
    pub fn routes<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        let bundle = self.clone();
        Router::new().route(
            "/pkg/{*path}",
            get(move |request: Request| {
                let bundle = bundle.clone();
                async move { bundle.serve(request).await }
            }),
        )
    }

    async fn serve(&self, mut request: Request) -> Response {
        let path = request
            .uri()
            .path()
            .strip_prefix("/pkg")
            .unwrap_or_default()
            .to_string();
        let (policy, file) = match split_version(&path) {
            Some((version, file)) if version == self.version => (IMMUTABLE, file),
            Some((_, file)) => ("no-cache", file),
            None => ("no-cache", path.as_str()),
        };
        // This build's files are named by their digest, so it can stand as
        // their validator (weak: the brotli, gzip and plain answers are the
        // same file). A browser revalidating anyway (a forced reload) gets
        // a bodiless 304. Files without a version keep `Last-Modified`
        // only: they may be rebuilt under a running server.
        let etag = (policy == IMMUTABLE)
            .then(|| HeaderValue::from_str(&format!("W/\"{}{}\"", self.version, file)).ok())
            .flatten();
        if let Some(etag) = &etag {
            if if_none_match_has(&request, etag) {
                let mut unchanged = StatusCode::NOT_MODIFIED.into_response();
                unchanged.headers_mut().insert(header::ETAG, etag.clone());
                return cache_for(unchanged, policy);
            }
        }
        let uri = match request.uri().query() {
            Some(query) => format!("{file}?{query}"),
            None => file.to_string(),
        };
        match uri.parse() {
            Ok(uri) => *request.uri_mut() = uri,
            Err(_) => return StatusCode::NOT_FOUND.into_response(),
        }
        let mut response = match self.files.clone().oneshot(request).await {
            Ok(response) => cache_for(response.map(Body::new), policy),
            Err(never) => match never {},
        };
        if let Some(etag) = etag {
            if response.status() == StatusCode::OK {
                response.headers_mut().insert(header::ETAG, etag);
            }
        }
        response
    }
}

/// The splitter's list of the chunks each lazy function needs, written
/// beside the bundle by `cargo leptos build --split`.
const CHUNK_MANIFEST: &str = "__wasm_split_manifest.json";

/// The manifest's entries by lazy function name: its keys are the name
/// and a hash (`call_page_13497219388001158699`), the hash changing with
/// the source. A missing or unreadable manifest means no preload hints
/// (the chunks still load when needed, one round trip later).
fn read_chunk_manifest(path: &Path) -> HashMap<String, Vec<String>> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return HashMap::new();
    };
    match serde_json::from_str::<HashMap<String, Vec<String>>>(&text) {
        Ok(entries) => entries
            .into_iter()
            .map(|(key, chunks)| {
                let name = match key.rsplit_once('_') {
                    Some((name, hash)) if hash.bytes().all(|b| b.is_ascii_digit()) => {
                        name.to_string()
                    }
                    _ => key,
                };
                (name, chunks)
            })
            .collect(),
        Err(error) => {
            tracing::warn!(manifest = %path.display(), %error, "the bundle's chunk manifest is unreadable; pages will not preload their chunks");
            HashMap::new()
        }
    }
}

/// Whether `If-None-Match` names `etag` (or is `*`), compared weakly as
/// RFC 9110 asks for this header.
fn if_none_match_has(request: &Request, etag: &HeaderValue) -> bool {
    let Ok(ours) = etag.to_str() else {
        return false;
    };
    let opaque = |tag: &str| tag.trim().trim_start_matches("W/").to_string();
    request
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|tag| tag.trim() == "*" || opaque(tag) == opaque(ours))
}

/// Whether every precompressed copy (`x.wasm.br`, `x.wasm.gz`) is at least
/// as new as its file: a copy left from an earlier build would send the
/// old bundle under the new one's name. A stale copy turns them all off
/// (the answer is then compressed per request), and says so.
fn copies_are_current(files: &[PathBuf]) -> bool {
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let mut current = true;
    for copy in files {
        let is_copy = copy
            .extension()
            .is_some_and(|ext| ext == "br" || ext == "gz");
        if !is_copy {
            continue;
        }
        let original = copy.with_extension("");
        let stale = match (modified(copy), modified(&original)) {
            (Some(copied), Some(changed)) => copied < changed,
            // A copy without its file is never asked for; nothing to serve.
            _ => false,
        };
        if stale {
            tracing::warn!(
                copy = %copy.display(),
                "a precompressed copy is older than its file; precompressed copies are not used (run the build again)"
            );
            current = false;
        }
    }
    current
}

/// `/<version>/<file>` into its parts, when the first segment looks like a
/// version (16 hex digits).
fn split_version(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix('/')?;
    let (version, _) = rest.split_once('/')?;
    let is_version = version.len() == 16 && version.bytes().all(|b| b.is_ascii_hexdigit());
    is_version.then(|| (version, &path[version.len() + 1..]))
}

fn cache_for(mut response: Response, policy: &'static str) -> Response {
    let served = matches!(
        response.status(),
        StatusCode::OK | StatusCode::NOT_MODIFIED | StatusCode::PARTIAL_CONTENT
    );
    if served {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static(policy));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chunk_manifest_is_read_by_lazy_function_name() {
        let site = tempfile::tempdir().unwrap();
        let manifest = site.path().join(CHUNK_MANIFEST);
        std::fs::write(
            &manifest,
            r#"{"call_page_13497219388001158699": ["chunk_4", "split_call_page_13497219388001158699"],
                "sign_in_page_1": ["chunk_4"]}"#,
        )
        .unwrap();
        let chunks = read_chunk_manifest(&manifest);
        assert_eq!(
            chunks.get("call_page"),
            Some(&vec![
                "chunk_4".to_string(),
                "split_call_page_13497219388001158699".to_string()
            ])
        );
        assert_eq!(
            chunks.get("sign_in_page"),
            Some(&vec!["chunk_4".to_string()])
        );
        assert_eq!(chunks.len(), 2);
        // Missing or broken: no hints, no failure.
        assert!(read_chunk_manifest(&site.path().join("none.json")).is_empty());
        std::fs::write(&manifest, "{not json").unwrap();
        assert!(read_chunk_manifest(&manifest).is_empty());
    }

    #[test]
    fn versions_are_told_from_file_names() {
        assert_eq!(
            split_version("/0123456789abcdef/moim.wasm"),
            Some(("0123456789abcdef", "/moim.wasm"))
        );
        assert_eq!(split_version("/moim.wasm"), None);
        assert_eq!(split_version("/not-a-version-xx/moim.js"), None);
        assert_eq!(split_version("/0123456789abcdeg/moim.js"), None);
    }

    #[test]
    fn the_version_follows_the_content() {
        let site = tempfile::tempdir().unwrap();
        let dir = site.path();
        std::fs::create_dir_all(dir.join("pkg")).unwrap();
        std::fs::write(dir.join("pkg/moim.js"), "one").unwrap();
        let first = Bundle::find(dir);
        assert_eq!(Bundle::find(dir).version(), first.version(), "stable");
        std::fs::write(dir.join("pkg/moim.js"), "two").unwrap();
        assert!(
            copies_are_current(&[dir.join("pkg/moim.js")]),
            "no copies: nothing stale"
        );
        let second = Bundle::find(dir);
        assert_ne!(
            second.version(),
            first.version(),
            "changes with the content"
        );
        assert_eq!(second.version().len(), 16);
        assert_eq!(second.pkg_dir(), format!("pkg/{}", second.version()));
    }

    #[test]
    fn a_copy_older_than_its_file_is_never_sent() {
        let site = tempfile::tempdir().unwrap();
        let pkg = site.path().join("pkg");
        std::fs::create_dir_all(&pkg).unwrap();
        std::fs::write(pkg.join("moim.js.br"), "old compressed").unwrap();
        std::fs::write(pkg.join("moim.js"), "new").unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(pkg.join("moim.js.br"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        let files = [pkg.join("moim.js"), pkg.join("moim.js.br")];
        assert!(!copies_are_current(&files), "stale copy");
        std::fs::write(pkg.join("moim.js.br"), "fresh compressed").unwrap();
        assert!(copies_are_current(&files), "fresh copy");
    }

    #[test]
    fn if_none_match_is_compared_weakly_and_in_lists() {
        let ours = HeaderValue::from_static("W/\"0123456789abcdef/moim.js\"");
        let asking = |value: &str| {
            axum::http::Request::builder()
                .header(header::IF_NONE_MATCH, value)
                .body(Body::empty())
                .unwrap()
        };
        assert!(if_none_match_has(
            &asking("W/\"0123456789abcdef/moim.js\""),
            &ours
        ));
        assert!(if_none_match_has(
            &asking("\"0123456789abcdef/moim.js\""),
            &ours
        ));
        assert!(if_none_match_has(
            &asking("\"x\", W/\"0123456789abcdef/moim.js\""),
            &ours
        ));
        assert!(if_none_match_has(&asking("*"), &ours));
        assert!(!if_none_match_has(
            &asking("W/\"0123456789abcdef/moim.css\""),
            &ours
        ));
        let none = axum::http::Request::builder().body(Body::empty()).unwrap();
        assert!(!if_none_match_has(&none, &ours));
    }
}
