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
