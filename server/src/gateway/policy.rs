//! Reading an authorizer's answer the way API Gateway does: validate its shape, then decide
//! Allow / explicit Deny / no matching Allow for one method ARN.

use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerResponse;
use aws_lambda_events::iam::IamPolicyEffect;
use serde_json::{Map, Value};

/// A validated authorizer answer, as cached per token.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The answer's policy statements.
    response: ApiGatewayCustomAuthorizerResponse,
    /// `principalId` plus the flat context, as the integration sees them.
    pub context: Map<String, Value>,
}

/// What a policy says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A statement allows it and none denies it.
    Allow,
    /// A statement explicitly denies it.
    ExplicitDeny,
    /// No statement allows it.
    NoAllow,
}

/// Validates a raw authorizer answer. API Gateway answers 500 when this fails: no principal, no
/// policy, no statements, or a context value that is not a string, number or boolean.
pub fn parse_grant(raw: Value) -> Result<Grant, String> {
    let context_value = raw.get("context").cloned();
    let response: ApiGatewayCustomAuthorizerResponse =
        serde_json::from_value(raw).map_err(|e| format!("malformed policy: {e}"))?;
    let principal = response
        .principal_id
        .clone()
        .filter(|p| !p.is_empty())
        .ok_or("authorizer returned no principalId")?;
    if response.policy_document.statement.is_empty() {
        return Err("policy has no statements".into());
    }
    let mut context = Map::new();
    match context_value {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (k, v) in map {
                match v {
                    Value::String(_) | Value::Number(_) | Value::Bool(_) => {
                        context.insert(k, v);
                    }
                    _ => {
                        return Err(format!(
                            "context value '{k}' is not a string, number or boolean"
                        ))
                    }
                }
            }
        }
        Some(_) => return Err("context is not an object".into()),
    }
    context.insert("principalId".into(), Value::String(principal));
    Ok(Grant { response, context })
}

impl Grant {
    /// Evaluates the policy for `method_arn`: an explicit Deny wins over any Allow.
    pub fn decide(&self, method_arn: &str) -> Decision {
        let mut allowed = false;
        for st in &self.response.policy_document.statement {
            let action = st
                .action
                .iter()
                .any(|a| glob_match(&a.to_ascii_lowercase(), "execute-api:invoke"));
            let resource = st.resource.iter().any(|r| glob_match(r, method_arn));
            if action && resource {
                match st.effect {
                    IamPolicyEffect::Deny => return Decision::ExplicitDeny,
                    _ => allowed = true,
                }
            }
        }
        if allowed {
            Decision::Allow
        } else {
            Decision::NoAllow
        }
    }
}

/// IAM-style wildcard match: `*` any run of characters (including `/`), `?` any one.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ARN: &str = "arn:aws:execute-api:local:000000000000:cubewalk/prod/PUT/cubewalkblocks";

    fn grant(statements: Value) -> Result<Grant, String> {
        parse_grant(json!({
            "principalId": "p",
            "policyDocument": {"Version": "2012-10-17", "Statement": statements},
            "context": {"a": "x", "n": 1, "b": true}
        }))
    }

    #[test]
    fn globs() {
        assert!(glob_match("arn:*/prod/*/*", ARN));
        assert!(glob_match("*", ARN));
        assert!(glob_match(ARN, ARN));
        assert!(!glob_match("arn:*/prod/GET/*", ARN));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "ac"));
        assert!(glob_match("a*b*c", "axxbyyc"));
    }

    #[test]
    fn decisions() {
        let allow = json!({"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "arn:*/prod/*/*"});
        let deny_put =
            json!({"Action": ["execute-api:*"], "Effect": "Deny", "Resource": ["arn:*/PUT/*"]});
        let get_only = json!({"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "arn:*/prod/GET/cubewalkblocks"});
        assert_eq!(grant(json!([allow])).unwrap().decide(ARN), Decision::Allow);
        assert_eq!(
            grant(json!([allow, deny_put])).unwrap().decide(ARN),
            Decision::ExplicitDeny
        );
        assert_eq!(
            grant(json!([get_only])).unwrap().decide(ARN),
            Decision::NoAllow
        );
        let g = grant(json!([allow])).unwrap();
        assert_eq!(g.context["principalId"], "p");
        assert_eq!(g.context["n"], 1);
    }

    #[test]
    fn malformed_answers_are_refused() {
        assert!(parse_grant(json!({"principalId": "p"})).is_err());
        assert!(
            parse_grant(json!({"principalId": "p", "policyDocument": {"Statement": []}})).is_err()
        );
        assert!(parse_grant(
            json!({"policyDocument": {"Statement": [{"Action": "*", "Resource": "*"}]}})
        )
        .is_err());
        let nested = json!({
            "principalId": "p",
            "policyDocument": {"Statement": [{"Action": "*", "Effect": "Allow", "Resource": "*"}]},
            "context": {"deep": {"x": 1}}
        });
        assert!(parse_grant(nested).is_err());
        assert!(parse_grant(json!("nonsense")).is_err());
    }
}
