//! Endpoint validation: the URL of the `/cubewalkblocks` resource, and the plain-HTTP rule.

use crate::error::{Error, Result};
use std::net::IpAddr;
use url::Url;

/// Longest accepted endpoint URL.
pub use crate::options::MAX_ENDPOINT_LEN;

/// Parses the endpoint (for example `https://abc.execute-api.eu-west-1.amazonaws.com/prod/cubewalkblocks`
/// or `http://127.0.0.1:3000/prod/cubewalkblocks`). Plain HTTP is refused unless the host is
/// loopback or `allow_insecure_http` is set, because the token would cross the network in clear.
pub fn parse_endpoint(text: &str, allow_insecure_http: bool) -> Result<Url> {
    if text.is_empty() || text.len() > MAX_ENDPOINT_LEN {
        return Err(Error::InvalidArgument(format!(
            "endpoint must be 1 to {MAX_ENDPOINT_LEN} bytes"
        )));
    }
    let url = Url::parse(text)
        .map_err(|e| Error::InvalidArgument(format!("endpoint is not a URL: {e}")))?;
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(Error::InvalidArgument(
            "endpoint must not carry a query, fragment or credentials".into(),
        ));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if allow_insecure_http || is_loopback(&url) => Ok(url),
        "http" => Err(Error::InvalidArgument(
            "plain http is only allowed to a loopback host; use https or set allow_insecure_http"
                .into(),
        )),
        other => Err(Error::InvalidArgument(format!(
            "endpoint scheme must be https or http, not {other}"
        ))),
    }
}

/// Parses the realtime (WebSocket) endpoint: `wss://`, or `ws://` only to a loopback host
/// unless `allow_insecure` (the same rule as [`parse_endpoint`]'s `http://`).
pub fn parse_realtime_endpoint(text: &str, allow_insecure: bool) -> Result<Url> {
    if text.is_empty() || text.len() > MAX_ENDPOINT_LEN {
        return Err(Error::InvalidArgument(format!(
            "realtime endpoint must be 1 to {MAX_ENDPOINT_LEN} bytes"
        )));
    }
    let url = Url::parse(text)
        .map_err(|e| Error::InvalidArgument(format!("realtime endpoint is not a URL: {e}")))?;
    if url.fragment().is_some() || !url.username().is_empty() || url.host().is_none() {
        return Err(Error::InvalidArgument(
            "realtime endpoint must name a host and carry no fragment or credentials".into(),
        ));
    }
    match url.scheme() {
        "wss" => Ok(url),
        "ws" if allow_insecure || is_loopback(&url) => Ok(url),
        "ws" => Err(Error::InvalidArgument(
            "plain ws is only allowed to a loopback host; use wss or set allow_insecure_http"
                .into(),
        )),
        other => Err(Error::InvalidArgument(format!(
            "realtime endpoint scheme must be wss or ws, not {other}"
        ))),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback() {
        assert!(parse_endpoint("http://127.0.0.1:3000/prod/cubewalkblocks", false).is_ok());
        assert!(parse_endpoint("http://127.8.9.10/prod/cubewalkblocks", false).is_ok());
        assert!(parse_endpoint("http://localhost:3000/prod/cubewalkblocks", false).is_ok());
        assert!(parse_endpoint("http://[::1]:3000/prod/cubewalkblocks", false).is_ok());
        assert!(parse_endpoint("http://example.com/prod/cubewalkblocks", false).is_err());
        assert!(parse_endpoint("http://10.0.0.1/prod/cubewalkblocks", false).is_err());
        assert!(parse_endpoint("http://example.com/prod/cubewalkblocks", true).is_ok());
        assert!(parse_endpoint("https://example.com/prod/cubewalkblocks", false).is_ok());
    }

    #[test]
    fn refuses_nonsense() {
        for bad in [
            "",
            "nope",
            "ftp://x/y",
            "https://u:p@x/y",
            "https://x/y?a=1",
        ] {
            assert!(parse_endpoint(bad, false).is_err(), "{bad}");
        }
        assert!(parse_endpoint(&format!("https://x/{}", "a".repeat(3000)), false).is_err());
    }
}
