//! Facts the SAM template repeats from the code, checked so the two cannot drift apart: the
//! `token` header's validation expression, the CORS methods, and the path the WAF rule limits.

use cubewalk_server::gateway::{CORS_ALLOW_METHODS, DEFAULT_TOKEN_REGEX};
use cubewalk_server::handlers::login;

const TEMPLATE: &str = include_str!("../template.yaml");

/// The value of the one line `key: "<value>"` (or unquoted) in the template.
fn value(key: &str) -> String {
    let prefix = format!("{key}: ");
    let found: Vec<&str> = TEMPLATE
        .lines()
        .filter_map(|l| l.trim().strip_prefix(prefix.as_str()))
        .collect();
    assert_eq!(found.len(), 1, "{key} appears {} times", found.len());
    found[0].trim_matches('"').trim_matches('\'').to_string()
}

#[test]
fn the_templates_token_validation_expression_is_the_gateways() {
    // YAML's double-quoted form would need `\\` for a backslash; the expression has none.
    assert!(!DEFAULT_TOKEN_REGEX.contains('\\'));
    assert_eq!(value("ValidationExpression"), DEFAULT_TOKEN_REGEX);
}

#[test]
fn cors_methods_and_the_rate_limited_login_path_match_the_code() {
    assert_eq!(value("AllowMethods").trim_matches('\''), CORS_ALLOW_METHODS);
    assert_eq!(value("SearchString"), format!("/prod{}", login::RESOURCE));
    assert!(TEMPLATE.contains(&format!("Path: {}\n", login::RESOURCE)));
}

#[test]
fn the_authorizer_gets_the_openid_connect_settings_the_code_reads() {
    use cubewalk_server::identity::OidcConfig;
    // The JWKS URL override is for issuers without discovery, not offered by the template.
    for var in &OidcConfig::ENV_VARS[..5] {
        assert!(
            TEMPLATE.contains(&format!("          {var}: !If [")),
            "{var} not set by the template"
        );
    }
    assert!(TEMPLATE.contains("OidcAudienceWithIssuer:"));
}

#[test]
fn no_function_environment_holds_a_password_or_a_token() {
    // The NoEcho parameters are the secret ones (PlayerPublicKeys is public but long; Tokens
    // are static development tokens).
    let lines: Vec<&str> = TEMPLATE.lines().collect();
    let secret_params: Vec<&str> = lines
        .windows(3)
        .filter(|w| w[1].trim() == "Type: String" && w[2].trim() == "NoEcho: true")
        .map(|w| w[0].trim().trim_end_matches(':'))
        .collect();
    assert!(secret_params.contains(&"Tokens"), "{secret_params:?}");
    let variables: Vec<&str> = lines
        .iter()
        .map(|l| l.trim())
        .filter(|l| l.starts_with("CUBEWALK_") || l.starts_with("AWS_"))
        .collect();
    assert!(variables.len() >= 10, "{variables:?}");
    for v in &variables {
        for p in &secret_params {
            assert!(
                !v.contains(&format!("!Ref {p}")) && !v.contains(&format!("${{{p}}}")),
                "{v} puts the secret parameter {p} in the environment"
            );
        }
    }
    let urls: Vec<&&str> = variables
        .iter()
        .filter(|v| v.starts_with("CUBEWALK_REDIS_URL:"))
        .collect();
    assert_eq!(urls.len(), 3);
    for (url, user) in urls.iter().zip(["blocks", "realtime", "realtime"]) {
        assert!(
            url.contains(&format!("\"rediss://cubewalk-{user}@")),
            "{url}: a user and no password"
        );
    }
    for secret in ["RedisBlocksSecret", "RedisRealtimeSecret"] {
        assert!(TEMPLATE.contains(&format!("CUBEWALK_REDIS_PASSWORD_SECRET: !Ref {secret}")));
        assert!(TEMPLATE.contains(&format!(
            "Passwords: [!Sub \"{{{{resolve:secretsmanager:${{{secret}}}:SecretString:password}}}}\"]"
        )));
    }
}

#[test]
fn realtime_goes_through_iot_core_and_players_can_only_read() {
    use cubewalk_server::handlers::broker_authorizer::TOKEN_KEY;
    // The game's realtime URL names the broker authorizer, which IoT Core runs unsigned (the
    // token is a signed JWT itself) on every connection.
    assert!(TEMPLATE.contains(
        "Value: !Sub \"wss://${IotDataEndpoint}/mqtt?x-amz-customauthorizer-name=${BrokerAuthorizer}\""
    ));
    assert!(TEMPLATE.contains("SigningDisabled: true"));
    // The private zone names exactly the account's IoT data endpoint: it never shadows IoT
    // Core's other names inside the VPC.
    assert!(TEMPLATE.contains("      Name: !Ref IotDataEndpoint\n"));
    assert!(!TEMPLATE.contains("Name: !Sub \"iot.${AWS::Region}.amazonaws.com\""));
    assert!(TEMPLATE.contains("Principal: iot.amazonaws.com"));
    assert_eq!(TOKEN_KEY, "token");
    // Only the publisher may publish, and only change topics; nothing else in the stack has
    // an iot: permission.
    let iot_actions: Vec<&str> = TEMPLATE
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("Action: iot:"))
        .collect();
    assert_eq!(iot_actions, ["Action: iot:Publish"]);
    assert!(TEMPLATE.contains(
        "Resource: !Sub \"arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:topic/cw/*\""
    ));
    // The blocks function appends to the feed; no WebSocket API or Management API remains.
    assert!(TEMPLATE.contains("CUBEWALK_REALTIME: \"on\""));
    for gone in [
        "AWS::ApiGatewayV2",
        "execute-api:ManageConnections",
        "CUBEWALK_REALTIME_ENDPOINT",
    ] {
        assert!(!TEMPLATE.contains(gone), "{gone} is still in the template");
    }
    // No NAT: the IoT data and Secrets Manager endpoints are in the VPC; no function may
    // reach 0.0.0.0/0 except the broker authorizer's egress to an OpenID Connect issuer.
    assert!(TEMPLATE.contains("ServiceName: !Sub \"com.amazonaws.${AWS::Region}.iot.data\""));
    assert!(TEMPLATE.contains("ServiceName: !Sub \"com.amazonaws.${AWS::Region}.secretsmanager\""));
    assert_eq!(TEMPLATE.matches("CidrIp: 0.0.0.0/0").count(), 1);
}
