//! AWS IoT Core's policy evaluation, as the local gate applies the broker authorizer's answer:
//! an explicit Deny wins, else an Allow whose action and resource match, else denied. Actions
//! and resources match IAM-style (`*` any run of characters, `?` one); MQTT's own wildcards
//! (`+`, `#`) in a topic filter are plain characters to a policy, as in IoT Core.

use super::policy::glob_match;
use serde_json::Value;

/// The statements of an authorizer's policy documents.
#[derive(Debug, Clone, Default)]
pub struct IotPolicy {
    statements: Vec<Statement>,
}

#[derive(Debug, Clone)]
struct Statement {
    allow: bool,
    actions: Vec<String>,
    resources: Vec<String>,
}

fn strings(v: Option<&Value>) -> Result<Vec<String>, String> {
    match v {
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .ok_or("not a string".to_string())
            })
            .collect(),
        _ => Err("missing Action or Resource".into()),
    }
}

impl IotPolicy {
    /// Parses policy documents given as JSON text (the authorizer's `policyDocuments`).
    pub fn parse(documents: &[String]) -> Result<Self, String> {
        let mut statements = Vec::new();
        for doc in documents {
            let doc: Value = serde_json::from_str(doc).map_err(|e| e.to_string())?;
            let list = match doc.get("Statement") {
                Some(Value::Array(list)) => list.clone(),
                Some(one @ Value::Object(_)) => vec![one.clone()],
                _ => return Err("a policy without statements".into()),
            };
            for s in list {
                let allow = match s.get("Effect").and_then(Value::as_str) {
                    Some("Allow") => true,
                    Some("Deny") => false,
                    _ => return Err("Effect is neither Allow nor Deny".into()),
                };
                statements.push(Statement {
                    allow,
                    actions: strings(s.get("Action"))?,
                    resources: strings(s.get("Resource"))?,
                });
            }
        }
        Ok(Self { statements })
    }

    /// Whether `action` (`iot:Subscribe`, ...) on `resource` (a full ARN) is allowed.
    pub fn allows(&self, action: &str, resource: &str) -> bool {
        let matching = |s: &&Statement| {
            s.actions.iter().any(|a| glob_match(a, action))
                && s.resources.iter().any(|r| glob_match(r, resource))
        };
        let mut matched = self.statements.iter().filter(matching).peekable();
        matched.peek().is_some() && matched.all(|s| s.allow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{Player, Role, Worlds};
    use cubewalk_protocol::WorldId;

    const ARN: &str = "arn:aws:iot:local:000000000000";

    fn player(worlds: Worlds) -> IotPolicy {
        let p = Player {
            id: "p1".into(),
            role: Role::Viewer,
            worlds,
        };
        let doc = crate::handlers::broker_authorizer::policy(&p, ARN).to_string();
        IotPolicy::parse(&[doc]).unwrap()
    }

    #[test]
    fn players_subscribe_to_their_worlds_only_and_never_publish() {
        let p = player(Worlds::Only(vec![WorldId::new("w").unwrap()]));
        let sub = |f: &str| p.allows("iot:Subscribe", &format!("{ARN}:topicfilter/{f}"));
        assert!(p.allows("iot:Connect", &format!("{ARN}:client/cw-0123abcd")));
        assert!(
            !p.allows("iot:Connect", &format!("{ARN}:client/sensor-17")),
            "another client's id (IoT Core would end its connection)"
        );
        assert!(sub("cw/w/0/0/0"));
        assert!(
            !sub("cw/w/#"),
            "a whole world at once (past 50 regions, each billed)"
        );
        assert!(!sub("cw/w/+/0/0"), "a row of regions at once");
        assert!(!sub("cw/w2/0/0/0"), "another world sharing a prefix");
        assert!(!sub("cw/#"));
        assert!(!sub("cw/+/0/0/0"));
        assert!(!sub("#"));
        assert!(p.allows("iot:Receive", &format!("{ARN}:topic/cw/w/1/2/3")));
        assert!(!p.allows("iot:Publish", &format!("{ARN}:topic/cw/w/1/2/3")));
        let all = player(Worlds::All);
        assert!(all.allows("iot:Subscribe", &format!("{ARN}:topicfilter/cw/any/0/0/0")));
        assert!(!all.allows("iot:Subscribe", &format!("{ARN}:topicfilter/cw/any/#")));
        assert!(!all.allows("iot:Subscribe", &format!("{ARN}:topicfilter/cw/+/0/0/0")));
        assert!(!all.allows("iot:Subscribe", &format!("{ARN}:topicfilter/other/x")));
        assert!(!all.allows("iot:Publish", &format!("{ARN}:topic/cw/any/0/0/0")));
        let none = player(Worlds::Only(vec![]));
        assert!(!none.allows("iot:Subscribe", &format!("{ARN}:topicfilter/cw/w/0/0/0")));
    }

    #[test]
    fn malformed_documents_are_refused() {
        for bad in [
            "{",
            "{}",
            r#"{"Statement":[{"Effect":"Maybe","Action":"a","Resource":"b"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Resource":"b"}]}"#,
        ] {
            assert!(IotPolicy::parse(&[bad.to_string()]).is_err(), "{bad}");
        }
    }
}
