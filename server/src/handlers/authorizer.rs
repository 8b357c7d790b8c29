//! The authorizer: verifies the `token` header value (a player token, or a development static
//! token; see [`crate::identity`]), for the REST API (a TOKEN authorizer) and the WebSocket
//! API's `$connect` (a REQUEST authorizer, since WebSocket APIs have no TOKEN type). One
//! function serves both event shapes. It answers the player id as `principalId` and the
//! player, role and worlds as the context, which the handlers enforce.

use crate::identity::{Player, Verifier};
use aws_lambda_events::apigw::{
    ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerRequest,
    ApiGatewayCustomAuthorizerRequestTypeRequest, ApiGatewayCustomAuthorizerResponse,
};
use aws_lambda_events::iam::{IamPolicyEffect, IamPolicyStatement};

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

/// Authorizes one TOKEN event: an accepted token gets an Allow policy for every method and
/// resource of the stage (API Gateway caches the policy per token and reuses it for other
/// methods, so a policy for only the calling method would make a later PUT fail), with the
/// player id as principal and the player's flat context. Anything else is `Unauthorized`.
pub async fn authorize(
    event: &ApiGatewayCustomAuthorizerRequest,
    verifier: &Verifier,
) -> Result<ApiGatewayCustomAuthorizerResponse, AuthorizerError> {
    let token = event.authorization_token.as_deref().unwrap_or("");
    let method_arn = event
        .method_arn
        .as_deref()
        .ok_or(AuthorizerError::BadEvent("no methodArn"))?;
    let stage_arn = stage_wildcard(method_arn).ok_or(AuthorizerError::BadEvent("bad methodArn"))?;
    Ok(allow(&check(verifier, token).await?, stage_arn))
}

/// Authorizes one REQUEST event (the WebSocket API's `$connect`): the token is the `token`
/// header; an accepted one gets an Allow policy for every route of the stage
/// (`arn:...:<apiId>/<stage>/*`, as WebSocket route ARNs have no method part).
pub async fn authorize_request(
    event: &ApiGatewayCustomAuthorizerRequestTypeRequest,
    verifier: &Verifier,
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
    Ok(allow(&check(verifier, token).await?, stage_arn))
}

/// Authorizes either event shape, told apart by its `type` (`TOKEN` or `REQUEST`).
pub async fn authorize_any(
    event: serde_json::Value,
    verifier: &Verifier,
) -> Result<ApiGatewayCustomAuthorizerResponse, AuthorizerError> {
    match event.get("type").and_then(|t| t.as_str()) {
        Some("TOKEN") => {
            authorize(
                &serde_json::from_value(event)
                    .map_err(|_| AuthorizerError::BadEvent("TOKEN event"))?,
                verifier,
            )
            .await
        }
        Some("REQUEST") => {
            authorize_request(
                &serde_json::from_value(event)
                    .map_err(|_| AuthorizerError::BadEvent("REQUEST event"))?,
                verifier,
            )
            .await
        }
        _ => Err(AuthorizerError::BadEvent(
            "type is neither TOKEN nor REQUEST",
        )),
    }
}

/// The token's player, or `Unauthorized` (the reason goes to the log, never to the caller).
async fn check(verifier: &Verifier, token: &str) -> Result<Player, AuthorizerError> {
    verifier.verify_fresh(token).await.map_err(|why| {
        tracing::info!(reason = %why, "token refused");
        AuthorizerError::Unauthorized
    })
}

fn allow(player: &Player, stage_arn: String) -> ApiGatewayCustomAuthorizerResponse {
    let mut statement = IamPolicyStatement::default();
    statement.action = vec!["execute-api:Invoke".into()];
    statement.effect = IamPolicyEffect::Allow;
    statement.resource = vec![stage_arn];
    let mut policy = ApiGatewayCustomAuthorizerPolicy::default();
    policy.version = Some("2012-10-17".into());
    policy.statement = vec![statement];
    let mut response = ApiGatewayCustomAuthorizerResponse::default();
    response.principal_id = Some(player.id.clone());
    response.policy_document = policy;
    response.context = player.to_context();
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
    use crate::identity::TokenSet;

    fn verifier(list: &str) -> Verifier {
        TokenSet::from_list(list).into()
    }

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

    #[tokio::test]
    async fn request_events_of_the_websocket_connect_are_authorized_by_the_token_header() {
        let tokens = verifier("secret-token");
        let r = authorize_any(request_event(Some("secret-token")), &tokens)
            .await
            .unwrap();
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v["policyDocument"]["Statement"][0]["Resource"][0],
            "arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/*"
        );
        for bad in [None, Some(""), Some("secret-tokeN")] {
            assert_eq!(
                authorize_any(request_event(bad), &tokens)
                    .await
                    .unwrap_err(),
                AuthorizerError::Unauthorized
            );
        }
        // The TOKEN shape still works through the same entry point; anything else is an error.
        let token = serde_json::to_value(event("secret-token")).unwrap();
        assert!(authorize_any(token, &tokens).await.is_ok());
        assert!(matches!(
            authorize_any(serde_json::json!({"type": "OTHER"}), &tokens).await,
            Err(AuthorizerError::BadEvent(_))
        ));
    }

    #[tokio::test]
    async fn right_token_allows_whole_stage() {
        let tokens = verifier("old-secret-1, new-secret-2");
        let r = authorize(&event("new-secret-2"), &tokens).await.unwrap();
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["principalId"], "static-1");
        assert_eq!(v["policyDocument"]["Version"], "2012-10-17");
        let st = &v["policyDocument"]["Statement"][0];
        assert_eq!(st["Effect"], "Allow");
        assert_eq!(st["Action"][0], "execute-api:Invoke");
        assert_eq!(
            st["Resource"][0],
            "arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/*/*"
        );
        assert_eq!(v["context"]["player"], "static-1");
        assert_eq!(v["context"]["role"], "editor");
        assert_eq!(v["context"]["worlds"], "*");
        assert!(!v.to_string().contains("new-secret-2"));
        assert!(authorize(&event("old-secret-1"), &tokens).await.is_ok());
    }

    #[tokio::test]
    async fn wrong_or_empty_token_is_unauthorized() {
        let tokens = verifier("secret-token");
        for t in ["", "secret-tokeN", "secret-token ", "secret"] {
            let e = authorize(&event(t), &tokens).await.unwrap_err();
            assert_eq!(e.to_string(), "Unauthorized");
        }
        let none = verifier("");
        assert!(none.is_empty());
        assert_eq!(
            authorize(&event(""), &none).await.unwrap_err(),
            AuthorizerError::Unauthorized
        );
    }

    #[tokio::test]
    async fn malformed_method_arn_is_an_error_not_an_allow() {
        let tokens = verifier("secret-token");
        let mut e = event("secret-token");
        e.method_arn = Some("nonsense".into());
        assert!(matches!(
            authorize(&e, &tokens).await,
            Err(AuthorizerError::BadEvent(_))
        ));
    }
}
