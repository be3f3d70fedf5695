//! Who may post: the bearer token compared in constant time, and the HMAC of the body when a
//! secret is configured. The headers are checked before the body is read.

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::Receiver;

/// Constant-time equality of a presented secret with the configured one.
fn same(presented: &[u8], expected: &[u8]) -> bool {
    presented.len() == expected.len() && bool::from(presented.ct_eq(expected))
}

/// The HMAC signature the request presents, decoded.
fn signature(headers: &HeaderMap) -> Result<Vec<u8>, &'static str> {
    headers
        .get("x-tripwire-signature")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("sha256="))
        .and_then(|h| alloy::primitives::hex::decode(h).ok())
        .ok_or("missing_signature")
}

/// The token, and that a signature is presented when one is required: all the headers can tell.
pub(super) fn authenticated_headers(r: &Receiver, headers: &HeaderMap) -> Result<(), &'static str> {
    if let Some(token) = &r.token {
        let presented = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or("missing_token")?;
        if !same(presented.as_bytes(), token.as_bytes()) {
            return Err("wrong_token");
        }
    }
    if r.hmac_secret.is_some() {
        signature(headers)?;
    }
    Ok(())
}

pub(super) fn authenticated(
    r: &Receiver,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), &'static str> {
    authenticated_headers(r, headers)?;
    if let Some(secret) = &r.hmac_secret {
        let sig = signature(headers)?;
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| "wrong_signature")?;
        mac.update(body);
        mac.verify_slice(&sig).map_err(|_| "wrong_signature")?;
    }
    Ok(())
}
