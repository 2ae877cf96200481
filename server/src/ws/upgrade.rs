//! The WebSocket opening handshake (RFC 6455, section 4.2), done here rather
//! than by axum's `WebSocketUpgrade` so that the upgrade hands back the very
//! `TcpStream` the server accepted: fan-out writes to it directly (see
//! [`crate::writer`]), which axum's wrapper has no way to allow.

use std::sync::Arc;

use axum::{
    extract::{FromRef, FromRequestParts},
    http::{
        header::{self, HeaderMap, HeaderName, HeaderValue},
        request::Parts,
        Method, StatusCode, Version,
    },
    response::{IntoResponse, Response},
};
use base64::{engine::general_purpose::STANDARD, Engine as _};
use bytes::Bytes;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tungstenite::handshake::derive_accept_key;

use crate::{
    accepted::Accepted,
    limits::{AddressSlot, ConnectionSlot},
    origin::OriginPolicy,
    proxy::{self, Proxied},
};

/// A valid WebSocket upgrade request, ready to be accepted.
pub struct WebSocketUpgrade {
    accept_key: HeaderValue,
    on_upgrade: OnUpgrade,
    /// For a request a trusted proxy forwarded: its client's place under the
    /// per-address cap, which the WebSocket keeps while it is open.
    client: Option<Arc<AddressSlot>>,
}

/// The connection once the handshake is through.
pub struct Upgraded {
    pub socket: TcpStream,
    /// Bytes the client sent right behind its request, already read.
    pub read_ahead: Bytes,
    /// The connection's place under the limits (and, behind a trusted
    /// proxy, its client's): keep it as long as the socket.
    pub slot: ConnectionSlot,
}

/// Why a request to `/ws` is not a WebSocket handshake.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum UpgradeError {
    #[error("a WebSocket handshake must be a GET request")]
    MethodNotGet,
    #[error(
        "this endpoint only speaks WebSocket: send `Connection: upgrade` and `Upgrade: websocket`"
    )]
    NotAnUpgrade,
    #[error("a WebSocket handshake needs HTTP/1.1")]
    HttpTooOld,
    #[error("only WebSocket version 13 is supported")]
    UnsupportedVersion,
    #[error("the `Sec-WebSocket-Key` header is missing")]
    MissingKey,
    #[error("the `Sec-WebSocket-Key` header must be 16 bytes in base64")]
    InvalidKey,
    #[error("WebSocket connections from this page's origin are not allowed")]
    ForeignOrigin,
    #[error("this connection cannot be upgraded")]
    NotUpgradable,
}

impl IntoResponse for UpgradeError {
    fn into_response(self) -> Response {
        let status = match self {
            Self::MethodNotGet => StatusCode::METHOD_NOT_ALLOWED,
            Self::NotAnUpgrade | Self::HttpTooOld => StatusCode::UPGRADE_REQUIRED,
            Self::UnsupportedVersion | Self::MissingKey | Self::InvalidKey => {
                StatusCode::BAD_REQUEST
            }
            Self::ForeignOrigin => StatusCode::FORBIDDEN,
            Self::NotUpgradable => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut response = (status, self.to_string()).into_response();
        if matches!(
            self,
            Self::NotAnUpgrade | Self::HttpTooOld | Self::UnsupportedVersion
        ) {
            // RFC 6455, 4.4: tell the client which version we speak.
            let headers = response.headers_mut();
            headers.insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
            headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        }
        response
    }
}

impl<S> FromRequestParts<S> for WebSocketUpgrade
where
    S: Send + Sync,
    Arc<OriginPolicy>: FromRef<S>,
{
    type Rejection = UpgradeError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let origins = Arc::<OriginPolicy>::from_ref(state);
        // Only `serve` puts this in, for a request from a trusted proxy.
        let proxied = parts.extensions.remove::<Proxied>();
        let accept_key = accept_key(
            &parts.method,
            parts.version,
            &parts.headers,
            proxied.is_some(),
            &origins,
        )?;
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or(UpgradeError::NotUpgradable)?;
        Ok(Self {
            accept_key,
            on_upgrade,
            client: proxied.map(|proxied| proxied.slot),
        })
    }
}

/// Why an accepted handshake did not yield a socket.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeFailed {
    #[error("the client went away during the upgrade: {0}")]
    Hyper(#[from] hyper::Error),
    /// `crate::serve` hands hyper a `TokioIo<Accepted>`, so anything else
    /// coming back is a wiring mistake.
    #[error("the upgraded connection is not an accepted TcpStream")]
    NotTcp,
}

impl WebSocketUpgrade {
    /// The `101 Switching Protocols` answer, and the socket it yields once
    /// hyper has written that answer.
    pub fn accept(
        self,
    ) -> (
        Response,
        impl std::future::Future<Output = Result<Upgraded, UpgradeFailed>> + Send,
    ) {
        let Self {
            accept_key,
            on_upgrade,
            client,
        } = self;
        let response = Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, "websocket")
            .header(header::SEC_WEBSOCKET_ACCEPT, accept_key)
            .body(axum::body::Body::empty())
            .expect("a valid response");
        let upgraded = async move {
            let parts = on_upgrade
                .await?
                .downcast::<TokioIo<Accepted>>()
                .map_err(|_| UpgradeFailed::NotTcp)?;
            let (socket, mut slot) = parts.io.into_inner().into_parts();
            if let Some(client) = client {
                slot.attribute(client);
            }
            Ok(Upgraded {
                socket,
                read_ahead: parts.read_buf,
                slot,
            })
        };
        (response, upgraded)
    }
}

/// Checks the handshake and derives `Sec-WebSocket-Accept`. `proxied`: the
/// request came through a trusted proxy, whose `X-Forwarded-Host` names the
/// host the browser asked for.
fn accept_key(
    method: &Method,
    version: Version,
    headers: &HeaderMap,
    proxied: bool,
    origins: &OriginPolicy,
) -> Result<HeaderValue, UpgradeError> {
    if method != Method::GET {
        return Err(UpgradeError::MethodNotGet);
    }
    // hyper cannot upgrade an HTTP/1.0 connection (it has no `OnUpgrade`):
    // say so as the client's problem, before anything else is checked.
    if version != Version::HTTP_11 {
        return Err(UpgradeError::HttpTooOld);
    }
    if !has_token(headers, header::CONNECTION, "upgrade")
        || !has_token(headers, header::UPGRADE, "websocket")
    {
        return Err(UpgradeError::NotAnUpgrade);
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err(UpgradeError::UnsupportedVersion);
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or(UpgradeError::MissingKey)?;
    // RFC 6455, 4.2.1: a random 16-byte nonce, base64-encoded.
    if !STANDARD
        .decode(key.as_bytes())
        .is_ok_and(|nonce| nonce.len() == 16)
    {
        return Err(UpgradeError::InvalidKey);
    }
    check_origin(headers, proxied, origins)?;
    Ok(HeaderValue::try_from(derive_accept_key(key.as_bytes()))
        .expect("base64 is a valid header value"))
}

/// Browsers send `Origin` with every WebSocket handshake and apply no
/// same-origin rule to WebSockets themselves, so without this check any
/// page the user visits could chat in their name (cross-site WebSocket
/// hijacking). Clients that send no `Origin` are not browsers, and pass.
/// Behind a trusted proxy, the page's host is the one the browser asked the
/// proxy for (see [`proxy::request_host`]).
fn check_origin(
    headers: &HeaderMap,
    proxied: bool,
    origins: &OriginPolicy,
) -> Result<(), UpgradeError> {
    let host = proxy::request_host(headers, proxied);
    let allowed = headers.get_all(header::ORIGIN).iter().all(|origin| {
        origin
            .to_str()
            .is_ok_and(|origin| origins.allows(origin, host))
    });
    if allowed {
        Ok(())
    } else {
        Err(UpgradeError::ForeignOrigin)
    }
}

/// Whether a comma-separated header (any of its occurrences) lists `token`,
/// compared case-insensitively as RFC 9110 requires.
fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handshake(extra: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        for &(name, value) in extra {
            headers.insert(name, HeaderValue::from_static(value));
        }
        headers
    }

    fn check(method: &Method, headers: &HeaderMap) -> Result<HeaderValue, UpgradeError> {
        accept_key(
            method,
            Version::HTTP_11,
            headers,
            false,
            &OriginPolicy::SAME_ORIGIN,
        )
    }

    #[test]
    fn accepts_a_valid_handshake_with_the_rfc_sample_key() {
        let key = check(&Method::GET, &handshake(&[])).unwrap();
        // The worked example of RFC 6455, section 1.3.
        assert_eq!(key, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn refuses_what_is_not_a_websocket_handshake() {
        let cases = [
            (Method::POST, handshake(&[]), UpgradeError::MethodNotGet),
            (
                Method::GET,
                handshake(&[("connection", "keep-alive")]),
                UpgradeError::NotAnUpgrade,
            ),
            (
                Method::GET,
                handshake(&[("upgrade", "h2c")]),
                UpgradeError::NotAnUpgrade,
            ),
            (
                Method::GET,
                handshake(&[("sec-websocket-version", "8")]),
                UpgradeError::UnsupportedVersion,
            ),
        ];
        for (method, headers, expected) in cases {
            assert_eq!(check(&method, &headers), Err(expected));
        }
        let mut keyless = handshake(&[]);
        keyless.remove("sec-websocket-key");
        assert_eq!(check(&Method::GET, &keyless), Err(UpgradeError::MissingKey));
    }

    #[test]
    fn the_key_must_be_16_bytes_of_base64() {
        for key in [
            "abc",
            "",
            "not base64 at all!!",
            // 15 and 17 bytes.
            "AAAAAAAAAAAAAAAAAAAA",
            "AAAAAAAAAAAAAAAAAAAAAAA=",
            // 16 bytes, but unpadded.
            "dGhlIHNhbXBsZSBub25jZQ",
        ] {
            let headers = {
                let mut headers = handshake(&[]);
                headers.insert("sec-websocket-key", HeaderValue::from_str(key).unwrap());
                headers
            };
            assert_eq!(
                check(&Method::GET, &headers),
                Err(UpgradeError::InvalidKey),
                "{key:?}"
            );
        }
    }

    #[test]
    fn http_1_0_is_told_to_upgrade() {
        let result = accept_key(
            &Method::GET,
            Version::HTTP_10,
            &handshake(&[]),
            false,
            &OriginPolicy::SAME_ORIGIN,
        );
        assert_eq!(result, Err(UpgradeError::HttpTooOld));
        let response = UpgradeError::HttpTooOld.into_response();
        assert_eq!(response.status(), StatusCode::UPGRADE_REQUIRED);
        assert_eq!(response.headers()[header::SEC_WEBSOCKET_VERSION], "13");
    }

    #[test]
    fn the_origin_is_checked_last_and_refused_with_403() {
        let foreign = handshake(&[("origin", "https://evil.example"), ("host", "localhost")]);
        assert_eq!(
            check(&Method::GET, &foreign),
            Err(UpgradeError::ForeignOrigin)
        );
        let own = handshake(&[("origin", "http://localhost"), ("host", "localhost")]);
        assert!(check(&Method::GET, &own).is_ok());
        assert!(accept_key(
            &Method::GET,
            Version::HTTP_11,
            &foreign,
            false,
            &OriginPolicy::Any
        )
        .is_ok());
        let mut twice = own.clone();
        twice.append("origin", HeaderValue::from_static("https://evil.example"));
        assert_eq!(
            check(&Method::GET, &twice),
            Err(UpgradeError::ForeignOrigin)
        );
        assert_eq!(
            UpgradeError::ForeignOrigin.into_response().status(),
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn behind_a_trusted_proxy_the_origin_is_compared_with_the_forwarded_host() {
        let forwarded = handshake(&[
            ("host", "10.0.0.5:3000"),
            ("x-forwarded-host", "chat.example.com"),
            ("origin", "https://chat.example.com"),
        ]);
        let verdict = |headers: &HeaderMap, proxied| {
            accept_key(
                &Method::GET,
                Version::HTTP_11,
                headers,
                proxied,
                &OriginPolicy::SAME_ORIGIN,
            )
        };
        assert!(verdict(&forwarded, true).is_ok());
        // From anyone else the header means nothing: Host is the page's.
        assert_eq!(verdict(&forwarded, false), Err(UpgradeError::ForeignOrigin));
        let mut internal = forwarded.clone();
        internal.insert("origin", HeaderValue::from_static("http://10.0.0.5:3000"));
        assert!(verdict(&internal, false).is_ok());
        assert_eq!(verdict(&internal, true), Err(UpgradeError::ForeignOrigin));
        // A trusted proxy that sends no X-Forwarded-Host: Host it is.
        let mut hostless = internal.clone();
        hostless.remove("x-forwarded-host");
        assert!(verdict(&hostless, true).is_ok());
    }

    #[test]
    fn rejections_are_client_errors_that_name_the_version() {
        let response = UpgradeError::NotAnUpgrade.into_response();
        assert_eq!(response.status(), StatusCode::UPGRADE_REQUIRED);
        assert_eq!(response.headers()[header::SEC_WEBSOCKET_VERSION], "13");
        assert_eq!(
            UpgradeError::MissingKey.into_response().status(),
            StatusCode::BAD_REQUEST
        );
    }

    mod handshake_inputs {
        use std::{
            future::Future,
            pin::pin,
            task::{Context, Poll, Waker},
        };

        use axum::http::Request;
        use proptest::{prelude::*, sample::select};

        use super::*;

        /// Mostly `valid`, else another plausible value, an arbitrary one,
        /// or none at all: each rule is met often enough for whole valid
        /// handshakes to come up, and broken often enough to be tested.
        fn header_value(
            valid: &'static str,
            others: &'static [&'static str],
        ) -> impl Strategy<Value = Option<HeaderValue>> {
            prop_oneof![
                8 => Just(Some(HeaderValue::from_static(valid))),
                1 => Just(None),
                1 => select(others).prop_map(|v| Some(HeaderValue::from_static(v))),
                1 => prop::collection::vec(any::<u8>(), 0..40)
                    .prop_filter_map("a header value", |b| HeaderValue::from_bytes(&b).ok())
                    .prop_map(Some),
            ]
        }

        fn key() -> impl Strategy<Value = Option<HeaderValue>> {
            prop_oneof![
                3 => header_value("dGhlIHNhbXBsZSBub25jZQ==", &["abc", "", "dGhlIHNhbXBsZSBub25jZQ"]),
                1 => prop::collection::vec(any::<u8>(), 14..19).prop_map(|nonce| {
                    Some(HeaderValue::try_from(STANDARD.encode(nonce)).unwrap())
                }),
            ]
        }

        fn method() -> impl Strategy<Value = Method> {
            prop_oneof![
                8 => Just(Method::GET),
                1 => Just(Method::POST),
                1 => "[A-Za-z]{1,10}".prop_map(|m| Method::from_bytes(m.as_bytes()).unwrap()),
            ]
        }

        fn version() -> impl Strategy<Value = Version> {
            prop_oneof![
                8 => Just(Version::HTTP_11),
                1 => select(&[Version::HTTP_09, Version::HTTP_10, Version::HTTP_2][..]),
            ]
        }

        fn policy() -> impl Strategy<Value = OriginPolicy> {
            select(&["", "*", "https://chat.example.com", "http://localhost:3000"][..])
                .prop_map(|list| OriginPolicy::parse(list).unwrap())
        }

        proptest! {
            /// Whatever arrives, the extractor answers at once without
            /// panicking, with the same verdict as `accept_key`; an accepted
            /// handshake really meets every rule, and a refusal is an HTTP
            /// client error (bar the 500 for a connection hyper cannot
            /// upgrade, which is all a valid handshake can get here: a
            /// request built in a test has no connection behind it).
            #[test]
            fn any_handshake_gets_a_typed_verdict(
                method in method(),
                version in version(),
                connection in header_value("keep-alive, Upgrade", &["upgrade", "close", "upgrade2"]),
                upgrade in header_value("websocket", &["WebSocket", "h2c", "websocket/2"]),
                ws_version in header_value("13", &["8", "13, 8", " 13"]),
                key in key(),
                host in header_value("localhost:3000", &["LocalHost:3000", "chat.example.com", ""]),
                origin in header_value("http://localhost:3000", &[
                    "https://LOCALHOST:3000",
                    "https://chat.example.com",
                    "https://evil.example",
                    "null",
                ]),
                policy in policy(),
            ) {
                let mut request = Request::builder().method(method.clone()).version(version).uri("/ws");
                for (name, value) in [
                    (header::CONNECTION, &connection),
                    (header::UPGRADE, &upgrade),
                    (header::SEC_WEBSOCKET_VERSION, &ws_version),
                    (header::SEC_WEBSOCKET_KEY, &key),
                    (header::HOST, &host),
                    (header::ORIGIN, &origin),
                ] {
                    if let Some(value) = value {
                        request = request.header(name, value);
                    }
                }
                let (mut parts, ()) = request.body(()).unwrap().into_parts();

                let verdict = accept_key(&parts.method, parts.version, &parts.headers, false, &policy);
                if verdict.is_ok() {
                    prop_assert_eq!(&method, Method::GET);
                    prop_assert_eq!(version, Version::HTTP_11);
                    let nonce = STANDARD.decode(key.as_ref().unwrap().as_bytes()).unwrap();
                    prop_assert_eq!(nonce.len(), 16);
                    if let Some(origin) = &origin {
                        let host = host.as_ref().and_then(|h| h.to_str().ok());
                        prop_assert!(policy.allows(origin.to_str().unwrap(), host));
                    }
                }

                let state = Arc::new(policy.clone());
                let extracted = pin!(WebSocketUpgrade::from_request_parts(&mut parts, &state));
                let Poll::Ready(extracted) = extracted.poll(&mut Context::from_waker(Waker::noop())) else {
                    panic!("the extractor never waits");
                };
                let error = extracted.err().expect("no OnUpgrade, so no upgrade");
                prop_assert_eq!(&error, verdict.as_ref().err().unwrap_or(&UpgradeError::NotUpgradable));
                let status = error.into_response().status();
                if error == UpgradeError::NotUpgradable {
                    prop_assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
                } else {
                    prop_assert!(status.is_client_error(), "{error:?}: {status}");
                }
            }
        }
    }
}
