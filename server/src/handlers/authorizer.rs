//! The authorizer: checks the `token` header value against the accepted tokens, for the REST
//! API (a TOKEN authorizer) and the WebSocket API's `$connect` (a REQUEST authorizer, since
//! WebSocket APIs have no TOKEN type). One function serves both event shapes.

use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerRequest,
    ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayCustomAuthorizerResponse,
};
use aws_lambda_events::iam::{IamPolicyEffect, IamPolicyStatement};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Why the authorizer refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizerError {
    /// The token is not accepted. The message is exactly `Unauthorized`, which API Gateway
    /// turns into 401 `{"message":"Unauthorized"}`.
    #[error("Unauthorized")]
    Unauthorized,
    /// The event is malformed (API Gateway answers 500).
    #[error("malformed authorizer event: {0}")]
    BadEvent(&'static str),
}

/// The accepted tokens. Several may be accepted at once so a token can be rotated without
/// downtime. Only SHA-256 digests are kept, compared in constant time, so neither the
/// comparison's timing nor a memory dump of this struct reveals a token or its length.
#[derive(Clone)]
pub struct TokenSet {
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenSet({} tokens)", self.digests.len())
    }
}

impl TokenSet {
    /// Accepts each of `tokens`; empty strings are ignored.
    pub fn new<I, S>(tokens: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self {
            digests: tokens
                .into_iter()
                .filter(|t| !t.as_ref().is_empty())
                .map(|t| Sha256::digest(t.as_ref().as_bytes()).into())
                .collect(),
        }
    }

    /// Reads a comma-separated list (as in the `CUBEWALK_TOKENS` environment variable).
    pub fn from_list(list: &str) -> Self {
        Self::new(list.split(',').map(str::trim))
    }

    /// How many tokens are accepted.
    pub fn len(&self) -> usize {
        self.digests.len()
    }

    /// Whether no token is accepted (every request is refused).
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// The slot of the matching token, checking every slot so timing does not tell which one
    /// matched, or whether any did.
    pub fn check(&self, token: &str) -> Option<usize> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (i, d) in self.digests.iter().enumerate() {
            if bool::from(d.ct_eq(&digest)) {
                found = Some(i);
            }
        }
        found
    }
}

/// Authorizes one TOKEN event: an accepted token gets an Allow policy for every method and
/// resource of the stage (API Gateway caches the policy per token and reuses it for other
/// methods, so a policy for only the calling method would make a later PUT fail), with the
/// principal `client-<slot>` and a flat context. Anything else is `Unauthorized`.
pub fn authorize(
    event: &ApiGatewayCustomAuthorizerRequest,
    tokens: &TokenSet,
) -> Result<ApiGatewayCustomAuthorizerResponse, AuthorizerError> {
    let token = event.authorization_token.as_deref().unwrap_or("");
    let method_arn = event
        .method_arn
        .as_deref()
        .ok_or(AuthorizerError::BadEvent("no methodArn"))?;
    let stage_arn = stage_wildcard(method_arn).ok_or(AuthorizerError::BadEvent("bad methodArn"))?;
    let slot = tokens.check(token).ok_or(AuthorizerError::Unauthorized)?;
    Ok(allow(slot, stage_arn))
}

/// Authorizes one REQUEST event (the WebSocket API's `$connect`): the token is the `token`
/// header; an accepted one gets an Allow policy for every route of the stage
/// (`arn:...:<apiId>/<stage>/*`, as WebSocket route ARNs have no method part).
pub fn authorize_request(
    event: &ApiGatewayCustomAuthorizerRequestTypeRequest,
    tokens: &TokenSet,
) -> Result<ApiGatewayCustomAuthorizerResponse, AuthorizerError> {
    let token = event
        .headers
        .get("token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let method_arn = event
        .method_arn
        .as_deref()
        .ok_or(AuthorizerError::BadEvent("no methodArn"))?;
    let stage_arn = stage_wildcard(method_arn)
        .and_then(|s| s.strip_suffix("/*").map(str::to_owned))
        .ok_or(AuthorizerError::BadEvent("bad methodArn"))?;
    let slot = tokens.check(token).ok_or(AuthorizerError::Unauthorized)?;
    Ok(allow(slot, stage_arn))
}

/// Authorizes either event shape, told apart by its `type` (`TOKEN` or `REQUEST`).
pub fn authorize_any(
    event: serde_json::Value,
    tokens: &TokenSet,
) -> Result<ApiGatewayCustomAuthorizerResponse, AuthorizerError> {
    match event.get("type").and_then(|t| t.as_str()) {
        Some("TOKEN") => authorize(
            &serde_json::from_value(event).map_err(|_| AuthorizerError::BadEvent("TOKEN event"))?,
            tokens,
        ),
        Some("REQUEST") => authorize_request(
            &serde_json::from_value(event)
                .map_err(|_| AuthorizerError::BadEvent("REQUEST event"))?,
            tokens,
        ),
        _ => Err(AuthorizerError::BadEvent(
            "type is neither TOKEN nor REQUEST",
        )),
    }
}

fn allow(slot: usize, stage_arn: String) -> ApiGatewayCustomAuthorizerResponse {
    let principal = format!("client-{slot}");

    let mut statement = IamPolicyStatement::default();
    statement.action = vec!["execute-api:Invoke".into()];
    statement.effect = IamPolicyEffect::Allow;
    statement.resource = vec![stage_arn];
    let mut policy = ApiGatewayCustomAuthorizerPolicy::default();
    policy.version = Some("2012-10-17".into());
    policy.statement = vec![statement];
    let mut response = ApiGatewayCustomAuthorizerResponse::default();
    response.principal_id = Some(principal.clone());
    response.policy_document = policy;
    response.context = serde_json::json!({ "principal": principal, "tokenSlot": slot });
    response
}

/// `arn:...:<apiId>/<stage>/<VERB>/<resource>` becomes `arn:...:<apiId>/<stage>/*/*`.
fn stage_wildcard(method_arn: &str) -> Option<String> {
    let mut parts = method_arn.splitn(3, '/');
    let api = parts.next().filter(|s| s.starts_with("arn:"))?;
    let stage = parts.next().filter(|s| !s.is_empty())?;
    Some(format!("{api}/{stage}/*/*"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(token: &str) -> ApiGatewayCustomAuthorizerRequest {
        serde_json::from_value(serde_json::json!({
            "type": "TOKEN",
            "authorizationToken": token,
            "methodArn": "arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/GET/cubewalkblocks"
        }))
        .unwrap()
    }

    fn request_event(token: Option<&str>) -> serde_json::Value {
        let mut headers = serde_json::json!({ "Host": "abc.execute-api.us-east-1.amazonaws.com" });
        if let Some(t) = token {
            headers["token"] = t.into();
        }
        serde_json::json!({
            "type": "REQUEST",
            "methodArn": "arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/$connect",
            "headers": headers,
            "requestContext": { "routeKey": "$connect", "eventType": "CONNECT", "connectionId": "x" }
        })
    }

    #[test]
    fn request_events_of_the_websocket_connect_are_authorized_by_the_token_header() {
        let tokens = TokenSet::from_list("secret-token");
        let r = authorize_any(request_event(Some("secret-token")), &tokens).unwrap();
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v["policyDocument"]["Statement"][0]["Resource"][0],
            "arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/*"
        );
        for bad in [None, Some(""), Some("secret-tokeN")] {
            assert_eq!(
                authorize_any(request_event(bad), &tokens).unwrap_err(),
                AuthorizerError::Unauthorized
            );
        }
        // The TOKEN shape still works through the same entry point; anything else is an error.
        let token = serde_json::to_value(event("secret-token")).unwrap();
        assert!(authorize_any(token, &tokens).is_ok());
        assert!(matches!(
            authorize_any(serde_json::json!({"type": "OTHER"}), &tokens),
            Err(AuthorizerError::BadEvent(_))
        ));
    }

    #[test]
    fn right_token_allows_whole_stage() {
        let tokens = TokenSet::from_list("old-secret-1, new-secret-2");
        let r = authorize(&event("new-secret-2"), &tokens).unwrap();
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["principalId"], "client-1");
        assert_eq!(v["policyDocument"]["Version"], "2012-10-17");
        let st = &v["policyDocument"]["Statement"][0];
        assert_eq!(st["Effect"], "Allow");
        assert_eq!(st["Action"][0], "execute-api:Invoke");
        assert_eq!(
            st["Resource"][0],
            "arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/*/*"
        );
        assert_eq!(v["context"]["tokenSlot"], 1);
        assert!(!v.to_string().contains("new-secret-2"));
        assert!(authorize(&event("old-secret-1"), &tokens).is_ok());
    }

    #[test]
    fn wrong_or_empty_token_is_unauthorized() {
        let tokens = TokenSet::from_list("secret-token");
        for t in ["", "secret-tokeN", "secret-token ", "secret"] {
            let e = authorize(&event(t), &tokens).unwrap_err();
            assert_eq!(e.to_string(), "Unauthorized");
        }
        let none = TokenSet::from_list("");
        assert!(none.is_empty());
        assert_eq!(
            authorize(&event(""), &none).unwrap_err(),
            AuthorizerError::Unauthorized
        );
    }

    #[test]
    fn malformed_method_arn_is_an_error_not_an_allow() {
        let tokens = TokenSet::from_list("secret-token");
        let mut e = event("secret-token");
        e.method_arn = Some("nonsense".into());
        assert!(matches!(
            authorize(&e, &tokens),
            Err(AuthorizerError::BadEvent(_))
        ));
        assert_eq!(format!("{tokens:?}"), "TokenSet(1 tokens)");
    }
}
