//! Security headers, on every response of the page's address.
//!
//! - `X-Content-Type-Options: nosniff`: a browser takes each response for
//!   the type it is declared as, never guesses. A static file or an error
//!   message sniffed as HTML or script could otherwise run in the page's
//!   origin.
//! - `Referrer-Policy: no-referrer`: Parley never reads `Referer`, and the
//!   page's address names a room (`/r/<name>`). `strict-origin-when-cross-origin`
//!   (browsers' default) would still tell every site a link leads to which
//!   chat server the reader came from; nothing here needs that said. (The
//!   WebSocket's `Origin`, which `/ws` checks, is sent whatever the policy.)
//! - `Content-Security-Policy`, on HTML: what the page may run and load,
//!   so that markup slipped into it (a message that escaped its escaping)
//!   runs nothing and sends nothing anywhere. See [`Policy`] for each
//!   directive.
//!
//! The page's inline scripts are let in two ways. Parley's own,
//! [`app::EARLY_SCRIPT`], is constant: its hash is in the policy. Leptos
//! writes the others (the module script that loads the wasm, the streaming
//! state after `</html>`); their text is Leptos' and the state varies with
//! what the page renders, so they carry a nonce instead, fresh for each
//! response ([`Nonce`]): the renderer hands it to Leptos and puts it in the
//! response's extensions, where [`add`] finds it.
//!
//! Under `cargo leptos watch`, Leptos adds a live-reload script (with the
//! nonce) whose WebSocket goes to another port: [`Policy::for_site`] lets
//! that in, and only then.

use std::sync::Arc;

use axum::{
    extract::State,
    http::{header, HeaderMap, HeaderValue},
    response::Response,
};
use base64::{
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
    Engine as _,
};
use leptos::config::LeptosOptions;
use sha2::{Digest, Sha256};

/// Adds the headers to `response` (an `axum::middleware::map_response`
/// function, with the site's [`Policy`] as its state): the policy to HTML
/// only, with the nonce the page was rendered with, if any.
pub async fn add(State(policy): State<Policy>, mut response: Response) -> Response {
    let nonce = response.extensions().get::<Nonce>().cloned();
    let headers = response.headers_mut();
    add_plain(headers);
    if is_html(headers) {
        let policy = policy.render(nonce.as_ref());
        let value = HeaderValue::from_str(&policy).expect("the policy is ASCII");
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}

/// The headers every response carries, HTML or not.
pub fn add_plain(headers: &mut HeaderMap) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

fn is_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim_start().starts_with("text/html"))
}

/// The page's Content-Security-Policy, all but the nonce worked out once:
///
/// - `default-src 'none'`: whatever is not named below is refused (fonts,
///   frames, workers, media: the page uses none).
/// - `script-src`: the page's own files (the JS that loads the wasm), the
///   early script by its hash, Leptos' inline scripts by the nonce, and
///   `'wasm-unsafe-eval'`, without which the browser will not compile the
///   WebAssembly. No `'unsafe-inline'`: an injected `<script>` or `onclick`
///   does not run.
/// - `connect-src 'self'`: the wasm file (fetched) and the WebSocket, which
///   is on the page's own host (`app::socket`). CSP 3 has `'self'` match
///   `ws:`/`wss:` there, as Firefox, Chromium (since 71) and Safari (since
///   16) do. Naming the host instead would need the one the browser asked
///   for, which a proxy may rewrite.
/// - `style-src 'self'`, `img-src 'self' data:`: the stylesheet and the
///   icon; no inline styles (the page has none), so injected markup cannot
///   restyle the page to mislead.
/// - `frame-ancestors 'none'`: no other site can frame the chat to trick
///   clicks on it.
/// - `base-uri 'none'`: an injected `<base>` cannot redirect the page's
///   relative addresses (its scripts among them).
/// - `form-action 'self'`: the page's forms (which, before hydration,
///   submit to the page itself) cannot be pointed elsewhere.
/// - `object-src 'none'`: no plugins, said outright as the CSP guides ask.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Up to where the nonce goes, and from there.
    head: Arc<str>,
    tail: Arc<str>,
}

impl Policy {
    /// The policy; with `live_reload`, the port of `cargo leptos watch`'s
    /// reload socket (on the page's host, whatever that is) is let in too.
    pub fn new(live_reload: Option<u32>) -> Self {
        let reload = live_reload
            .map(|port| format!(" ws://*:{port} wss://*:{port}"))
            .unwrap_or_default();
        let head = format!(
            "default-src 'none'; script-src 'self' '{}'",
            script_hash(app::EARLY_SCRIPT)
        );
        let tail = format!(
            " 'wasm-unsafe-eval'; \
             connect-src 'self'{reload}; \
             style-src 'self'; \
             img-src 'self' data:; \
             frame-ancestors 'none'; \
             base-uri 'none'; \
             form-action 'self'; \
             object-src 'none'"
        );
        Self {
            head: head.into(),
            tail: tail.into(),
        }
    }

    /// The policy for the site `options` describe: under `cargo leptos
    /// watch` (`LEPTOS_WATCH`, as Leptos' `AutoReload` checks) the page
    /// has a reload script, whose socket is let in.
    pub fn for_site(options: &LeptosOptions) -> Self {
        let watched = std::env::var_os("LEPTOS_WATCH").is_some();
        Self::new(watched.then(|| options.reload_external_port.unwrap_or(options.reload_port)))
    }

    /// The header's value for a page rendered with `nonce`.
    pub fn render(&self, nonce: Option<&Nonce>) -> String {
        match nonce {
            Some(nonce) => format!("{} 'nonce-{}'{}", self.head, nonce.0, self.tail),
            None => format!("{}{}", self.head, self.tail),
        }
    }
}

/// The CSP source that allows an inline script whose text is `script`:
/// `sha256-` and the standard base64 of the SHA-256 of its bytes.
pub fn script_hash(script: &str) -> String {
    format!("sha256-{}", STANDARD.encode(Sha256::digest(script)))
}

/// A page's nonce: 128 random bits, one per rendered page, so that a
/// script tag injected into one page cannot know it.
#[derive(Clone, Debug)]
pub struct Nonce(Arc<str>);

impl Nonce {
    pub fn new() -> Self {
        let mut bytes = [0; 16];
        getrandom::fill(&mut bytes).expect("the operating system's random source works");
        // base64url is within CSP's nonce syntax.
        Self(URL_SAFE_NO_PAD.encode(bytes).into())
    }

    /// Gives it to Leptos for this render (call it in the render's context
    /// function): every inline script Leptos writes then carries it. It
    /// replaces the one leptos_axum makes up, which nothing outside the
    /// render could put in the header.
    pub fn provide(&self) {
        leptos::prelude::provide_context(leptos::nonce::Nonce::from_value(Arc::clone(&self.0)));
    }
}

impl Default for Nonce {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;

    #[test]
    fn the_hash_is_the_one_csp_specifies() {
        // The example of the CSP specification and MDN.
        assert_eq!(
            script_hash("alert('Hello, world.');"),
            "sha256-qznLcsROx4GACP2dm0UCKCzCG+HiZ1guq6ZZDob/Tng="
        );
    }

    #[test]
    fn the_policy_allows_the_early_script_by_its_hash() {
        let digest = Sha256::digest(app::EARLY_SCRIPT.as_bytes());
        let expected = format!("'sha256-{}'", STANDARD.encode(digest));
        let policy = Policy::new(None).render(None);
        assert!(policy.contains(&expected), "{policy}");
        assert!(!policy.contains("'nonce-"), "{policy}");
        assert!(!policy.contains("unsafe-inline"), "{policy}");
        assert!(policy.contains("; connect-src 'self'; "), "{policy}");
    }

    #[test]
    fn nonces_differ_and_fit_the_csp_syntax() {
        let (a, b) = (Nonce::new(), Nonce::new());
        assert_ne!(a.0, b.0);
        assert_eq!(a.0.len(), 22);
        assert!(a
            .0
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'));
        let policy = Policy::new(None).render(Some(&a));
        assert!(
            policy.contains(&format!("' 'nonce-{}' 'wasm", a.0)),
            "{policy}"
        );
    }

    #[test]
    fn under_cargo_leptos_watch_the_reload_socket_is_let_in() {
        let policy = Policy::new(Some(3001)).render(None);
        assert!(
            policy.contains("; connect-src 'self' ws://*:3001 wss://*:3001; "),
            "{policy}"
        );
    }

    #[tokio::test]
    async fn html_gets_the_policy_with_its_nonce_and_everything_gets_the_rest() {
        let policy = Policy::new(None);
        let nonce = Nonce::new();
        let mut page = (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            "<p>hi</p>",
        )
            .into_response();
        page.extensions_mut().insert(nonce.clone());
        let page = add(State(policy.clone()), page).await;
        assert_eq!(
            page.headers()[header::CONTENT_SECURITY_POLICY],
            policy.render(Some(&nonce)).as_str()
        );
        let text = add(State(policy), "plain".into_response()).await;
        assert!(text
            .headers()
            .get(header::CONTENT_SECURITY_POLICY)
            .is_none());
        for response in [&page, &text] {
            assert_eq!(
                response.headers()[header::X_CONTENT_TYPE_OPTIONS],
                "nosniff"
            );
            assert_eq!(response.headers()[header::REFERRER_POLICY], "no-referrer");
        }
    }
}
