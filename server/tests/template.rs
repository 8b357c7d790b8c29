//! Facts the SAM template repeats from the code, checked so the two cannot drift apart: the
//! `token` header's validation expression, the CORS methods, and the path the WAF rule limits;
//! and the store's wiring under each `StoreEngine` (MemoryDB or ElastiCache), read from the
//! template's text (no YAML parser knows CloudFormation's `!` tags), block by block.

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

/// The text of the top-level section `name` (`Resources`, `Mappings`, ...): its own line and
/// every line up to the next one at column 0.
fn section(name: &str) -> &'static str {
    let head = format!("\n{name}:\n");
    let start = TEMPLATE
        .find(&head)
        .unwrap_or_else(|| panic!("no section {name}"))
        + 1;
    block_from(TEMPLATE, start, head.len() - 1, |l| !l.starts_with(' '))
}

/// The block of the entry `name` (two spaces in) of `section_name`: its own line and every
/// more indented line after it.
fn entry(section_name: &str, name: &str) -> &'static str {
    let text = section(section_name);
    let head = format!("\n  {name}:\n");
    let start = text
        .find(&head)
        .unwrap_or_else(|| panic!("no {section_name}.{name}"))
        + 1;
    block_from(text, start, head.len() - 1, |l| {
        l.starts_with("  ") && !l.starts_with("   ")
    })
}

/// `text` from `start`, past its first `head_len` bytes, up to the first non-empty line for
/// which `ends` holds.
fn block_from(text: &str, start: usize, head_len: usize, ends: impl Fn(&str) -> bool) -> &str {
    let mut at = start + head_len;
    for line in text[at..].split_inclusive('\n') {
        if !line.trim().is_empty() && ends(line) {
            return &text[start..at];
        }
        at += line.len();
    }
    &text[start..]
}

/// A resource's block.
fn resource(name: &str) -> &'static str {
    entry("Resources", name)
}

/// The names of the resources of `kind` (`AWS::MemoryDB::User`).
fn resources_of(kind: &str) -> Vec<&'static str> {
    section("Resources")
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   ") && l.ends_with(':'))
        .map(|l| l.trim().trim_end_matches(':'))
        .filter(|name| resource(name).contains(&format!("\n    Type: {kind}\n")))
        .collect()
}

/// Whether `block` has the line `line` (compared trimmed).
fn has_line(block: &str, line: &str) -> bool {
    block.lines().any(|l| l.trim() == line)
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
    // Each URL is the line after `CUBEWALK_REDIS_URL: !Sub`: a user, no password.
    let urls: Vec<&str> = lines
        .windows(2)
        .filter(|w| w[0].trim() == "CUBEWALK_REDIS_URL: !Sub")
        .map(|w| w[1].trim())
        .collect();
    assert_eq!(urls.len(), 3);
    for (url, user) in urls.iter().zip(["blocks", "realtime", "realtime"]) {
        assert_eq!(
            *url,
            format!("- \"rediss://${{StoreName}}-{user}@${{Host}}:6379\""),
            "a user and no password"
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

#[test]
fn either_store_engine_is_wired_with_tls_acl_users_replicas_and_snapshots() {
    let engine = entry("Parameters", "StoreEngine");
    assert!(has_line(engine, "Default: memorydb"), "{engine}");
    assert!(has_line(engine, "AllowedValues: [memorydb, elasticache]"));
    let conditions = section("Conditions");
    assert!(has_line(
        conditions,
        "UsesMemoryDb: !Equals [!Ref StoreEngine, memorydb]"
    ));
    assert!(has_line(
        conditions,
        "UsesElastiCache: !Equals [!Ref StoreEngine, elasticache]"
    ));

    // Every resource of an engine exists only under that engine's condition.
    for (prefix, condition) in [
        ("AWS::MemoryDB::", "UsesMemoryDb"),
        ("AWS::ElastiCache::", "UsesElastiCache"),
    ] {
        let names: Vec<&str> = section("Resources")
            .lines()
            .filter(|l| l.trim_start().starts_with(&format!("Type: {prefix}")))
            .collect();
        assert!(names.len() >= 5, "{prefix}: {names:?}");
        for kind in names {
            let kind = kind.trim().trim_start_matches("Type: ");
            for name in resources_of(kind) {
                assert!(
                    has_line(resource(name), &format!("Condition: {condition}")),
                    "{name} ({kind}) without Condition: {condition}"
                );
            }
        }
    }

    let memorydb = resource("MemoryDbCluster");
    for line in [
        "TLSEnabled: true",
        "ACLName: !Ref MemoryDbAcl",
        "NumShards: !Ref RedisShards",
        "NumReplicasPerShard: 1",
        "ParameterGroupName: !Ref MemoryDbParameters",
        "SubnetGroupName: !Ref MemoryDbSubnetGroup",
        "SecurityGroupIds: [!Ref RedisSecurityGroup]",
        "Port: 6379",
        "SnapshotRetentionLimit: !Ref SnapshotRetentionDays",
        "SnapshotWindow: \"03:00-04:00\"",
    ] {
        assert!(has_line(memorydb, line), "MemoryDbCluster lacks {line}");
    }
    assert!(memorydb.contains("FinalSnapshotName:"));
    assert!(has_line(
        resource("MemoryDbParameters"),
        "maxmemory-policy: noeviction"
    ));

    let elasticache = resource("RedisReplicationGroup");
    for line in [
        "ClusterMode: enabled",
        "TransitEncryptionEnabled: true",
        "AtRestEncryptionEnabled: true",
        "UserGroupIds: [!Ref RedisUserGroup]",
        "NumNodeGroups: !Ref RedisShards",
        "ReplicasPerNodeGroup: 1",
        "AutomaticFailoverEnabled: true",
        "MultiAZEnabled: true",
        "SecurityGroupIds: [!Ref RedisSecurityGroup]",
        "Port: 6379",
        "SnapshotRetentionLimit: !Ref SnapshotRetentionDays",
        "SnapshotWindow: \"03:00-04:00\"",
        "DeletionPolicy: Snapshot",
    ] {
        assert!(
            has_line(elasticache, line),
            "RedisReplicationGroup lacks {line}"
        );
    }
    assert!(has_line(
        resource("RedisParameters"),
        "maxmemory-policy: noeviction"
    ));

    // The three functions that reach the store take the chosen engine's endpoint (the URLs'
    // port, 6379, is the one both clusters are given, checked above).
    let host = "- Host: !If [UsesMemoryDb, !GetAtt MemoryDbCluster.ClusterEndpoint.Address, !GetAtt RedisReplicationGroup.ConfigurationEndPoint.Address]";
    for function in [
        "BlocksFunction",
        "BrokerAuthorizerFunction",
        "PublisherFunction",
    ] {
        assert!(
            has_line(resource(function), host),
            "{function} does not choose the store's endpoint by engine"
        );
    }
    assert_eq!(TEMPLATE.matches(host).count(), 3);
}

#[test]
fn both_engines_users_are_one_definition_from_the_same_secrets() {
    let mapping = entry("Mappings", "StoreUsers");
    for (role, secret) in [
        ("blocks", "RedisBlocksSecret"),
        ("realtime", "RedisRealtimeSecret"),
    ] {
        let access = mapping
            .lines()
            .skip_while(|l| l.trim() != format!("{role}:"))
            .find_map(|l| l.trim().strip_prefix("AccessString: "))
            .unwrap_or_else(|| panic!("StoreUsers.{role}.AccessString"));
        assert!(access.starts_with("\"on ~cw:"), "{access}");
        let capitalised = format!("{}{}", role[..1].to_uppercase(), &role[1..]);
        let password = format!(
            "Passwords: [!Sub \"{{{{resolve:secretsmanager:${{{secret}}}:SecretString:password}}}}\"]"
        );
        for user in [
            format!("MemoryDb{capitalised}User"),
            format!("Redis{capitalised}User"),
        ] {
            let block = resource(&user);
            assert!(
                has_line(
                    block,
                    &format!("AccessString: !FindInMap [StoreUsers, {role}, AccessString]")
                ),
                "{user} does not take the shared access string"
            );
            assert!(
                has_line(block, &format!("UserName: !Sub \"${{StoreName}}-{role}\"")),
                "{user}'s name"
            );
            assert!(
                has_line(block, &password),
                "{user}'s password from {secret}"
            );
        }
        assert!(has_line(
            resource("MemoryDbAcl"),
            &format!("- !Sub \"${{StoreName}}-{role}\"")
        ));
        assert!(has_line(
            resource("RedisUserGroup"),
            &format!("- !Ref Redis{capitalised}User")
        ));
    }
    // No other access string anywhere: only ElastiCache's disabled default user has its own.
    let literal: Vec<&str> = TEMPLATE
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("AccessString: \""))
        .collect();
    assert_eq!(literal.len(), 3, "{literal:?}");
    assert!(has_line(
        resource("RedisDefaultUser"),
        "AccessString: \"off -@all\""
    ));
    assert_eq!(resources_of("AWS::MemoryDB::User").len(), 2);
    assert_eq!(resources_of("AWS::ElastiCache::User").len(), 3);
}

#[test]
fn the_blocks_function_waits_for_a_replica_on_elasticache_only() {
    let wait = entry("Parameters", "ElastiCacheWaitReplicas");
    assert!(has_line(wait, "Default: \"1\""), "{wait}");
    assert!(has_line(wait, "AllowedValues: [\"0\", \"1\"]"));
    let line =
        "CUBEWALK_REDIS_WAIT_REPLICAS: !If [UsesMemoryDb, \"0\", !Ref ElastiCacheWaitReplicas]";
    assert!(has_line(resource("BlocksFunction"), line));
    assert_eq!(TEMPLATE.matches("CUBEWALK_REDIS_WAIT_REPLICAS").count(), 1);
    // The blocks user may send WAIT.
    let blocks = entry("Mappings", "StoreUsers")
        .lines()
        .skip_while(|l| l.trim() != "blocks:")
        .find(|l| l.trim().starts_with("AccessString:"))
        .unwrap_or_default();
    assert!(blocks.contains(" +wait "), "{blocks}");
}

#[test]
fn the_block_readers_stop_at_the_next_entry() {
    let cluster = resource("MemoryDbCluster");
    assert!(cluster.starts_with("  MemoryDbCluster:\n"));
    assert!(!cluster.contains("RedisSubnetGroup:"), "{cluster}");
    assert!(section("Resources").contains("  RedisReplicationGroup:\n"));
    assert!(!section("Resources").contains("\nOutputs:"));
    assert!(!section("Parameters").contains("\nGlobals:"));
}

/// Every alarm's block, by name.
fn alarms() -> Vec<(&'static str, &'static str)> {
    resources_of("AWS::CloudWatch::Alarm")
        .into_iter()
        .map(|name| (name, resource(name)))
        .collect()
}

/// The alarms whose block has every one of `lines`.
fn alarms_with(lines: &[&str]) -> Vec<&'static str> {
    alarms()
        .into_iter()
        .filter(|(_, block)| lines.iter().all(|l| has_line(block, l)))
        .map(|(name, _)| name)
        .collect()
}

#[test]
fn an_alarm_watches_each_signal_and_notifies_the_topic() {
    use cubewalk_server::metrics::{BLOCKS_FUNCTION, NAMESPACE_ENV};
    let all = alarms();
    assert!(all.len() >= 15, "{} alarms", all.len());
    for (name, block) in &all {
        assert!(
            has_line(block, "AlarmActions: [!Ref AlarmTopic]"),
            "{name} notifies no one"
        );
    }
    let api = ["Namespace: AWS/ApiGateway", "Value: !Ref AWS::StackName"];
    assert_eq!(
        alarms_with(&[api[0], api[1], "MetricName: 5XXError", "Statistic: Average"]),
        ["ApiErrorRateAlarm"]
    );
    assert_eq!(
        alarms_with(&[api[0], api[1], "MetricName: 4XXError"]),
        ["ApiThrottlingAlarm"]
    );
    assert!(has_line(
        resource("CubeWalkApi"),
        "Name: !Ref AWS::StackName"
    ));

    // The store's memory and CPU, in the chosen engine's namespace, at 80%.
    for (alarm, metric) in [
        ("StoreMemoryAlarm", "DatabaseMemoryUsagePercentage"),
        ("StoreCpuAlarm", "EngineCPUUtilization"),
    ] {
        let block = resource(alarm);
        assert!(has_line(block, "Threshold: 80"), "{alarm}");
        assert!(has_line(block, "- UsesMemoryDb"), "{alarm}");
        assert!(
            block.contains(&format!(
                "SELECT MAX({metric}) FROM \\\"AWS/MemoryDB\\\" WHERE ClusterName = '${{StoreName}}'"
            )),
            "{alarm}: MemoryDB's"
        );
        assert!(
            block.contains(&format!(
                "SELECT MAX({metric}) FROM \\\"AWS/ElastiCache\\\" WHERE CacheClusterId LIKE '${{RedisReplicationGroup}}-%'"
            )),
            "{alarm}: ElastiCache's"
        );
    }

    // Errors and throttles of every function (errors but the REST authorizer's, whose
    // refusals are errors by contract).
    for function in [
        "AuthorizerFunction",
        "BlocksFunction",
        "BrokerAuthorizerFunction",
        "PublisherFunction",
        "LoginFunction",
    ] {
        let of = format!("Value: !Ref {function}");
        let throttles = alarms_with(&["Namespace: AWS/Lambda", "MetricName: Throttles", &of]);
        assert_eq!(throttles.len(), 1, "{function} throttles");
        let errors = alarms_with(&["Namespace: AWS/Lambda", "MetricName: Errors", &of]);
        assert_eq!(
            errors.len(),
            usize::from(function != "AuthorizerFunction"),
            "{function} errors"
        );
    }
    let concurrency = resource("ConcurrencyAlarm");
    assert!(has_line(concurrency, "MetricName: ConcurrentExecutions"));
    assert!(has_line(
        concurrency,
        "Expression: !Sub \"100 * concurrent / ${AccountConcurrencyLimit}\""
    ));

    // StoreFull from the blocks function's EMF lines, in the namespace the functions are given.
    let namespace = "!Sub \"CubeWalk/${AWS::StackName}\"";
    assert!(has_line(
        section("Globals"),
        &format!("{NAMESPACE_ENV}: {namespace}")
    ));
    assert_eq!(
        alarms_with(&[
            &format!("Namespace: {namespace}"),
            "MetricName: StoreFull",
            &format!("Value: {BLOCKS_FUNCTION}"),
        ]),
        ["StoreFullAlarm"]
    );

    // E-mail only when asked for.
    let email = resource("AlarmEmailSubscription");
    assert!(has_line(email, "Condition: HasAlarmEmail"));
    assert!(has_line(email, "Endpoint: !Ref AlarmEmail"));
    assert!(has_line(
        section("Conditions"),
        "HasAlarmEmail: !Not [!Equals [!Ref AlarmEmail, \"\"]]"
    ));
    assert!(has_line(entry("Parameters", "AlarmEmail"), "Default: \"\""));
}

/// The dashboard's body as CloudFormation would render it for `engine`: the `!Sub` block's
/// text with every `${...}` replaced.
fn dashboard_for(engine: &str) -> serde_json::Value {
    let block = resource("Dashboard");
    let body: String = block
        .lines()
        .skip_while(|l| l.trim() != "- |")
        .skip(1)
        .take_while(|l| {
            l.trim() != "- StoreNamespace: !If [UsesMemoryDb, AWS/MemoryDB, AWS/ElastiCache]"
        })
        .map(|l| format!("{}\n", l.trim()))
        .collect();
    let (namespace, filter) = match engine {
        "memorydb" => ("AWS/MemoryDB", "ClusterName = 'cubewalk'".to_owned()),
        _ => (
            "AWS/ElastiCache",
            "CacheClusterId LIKE 'stack-world-0abc-%'".to_owned(),
        ),
    };
    let mut rendered = body;
    for (var, value) in [
        ("AWS::Region", "eu-west-1"),
        ("AWS::StackName", "stack"),
        ("StoreNamespace", namespace),
        ("StoreFilter", filter.as_str()),
        ("BlocksFunction", "stack-BlocksFunction-1"),
        ("PublisherFunction", "stack-PublisherFunction-1"),
        (
            "BrokerAuthorizerFunction",
            "stack-BrokerAuthorizerFunction-1",
        ),
    ] {
        rendered = rendered.replace(&format!("${{{var}}}"), value);
    }
    assert!(!rendered.contains("${"), "a variable left: {rendered}");
    serde_json::from_str(&rendered).unwrap_or_else(|e| panic!("{e}: {rendered}"))
}

#[test]
fn the_dashboard_is_valid_json_showing_every_metric() {
    use cubewalk_server::metrics::{Metric, BLOCKS_FUNCTION, PUBLISHER_FUNCTION};
    for engine in ["memorydb", "elasticache"] {
        let body = dashboard_for(engine);
        let widgets = body["widgets"].as_array().expect("widgets");
        assert!(widgets.len() >= 8);
        let mut rows = Vec::new();
        for w in widgets {
            assert_eq!(w["type"], "metric");
            assert_eq!(w["properties"]["region"], "eu-west-1");
            rows.extend(
                w["properties"]["metrics"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .cloned(),
            );
        }
        let text = serde_json::to_string(&rows).unwrap();
        // Every metric the functions print, under the stack's namespace and the functions'
        // dimension values.
        for metric in Metric::ALL {
            assert!(
                text.contains(&format!("\"{}\"", metric.name())),
                "{engine}: {metric:?} not on the dashboard"
            );
        }
        assert!(text.contains("[\"CubeWalk/stack\",\"Requests\",\"Function\",\"blocks\"]"));
        assert!(text.contains(&format!("\"Function\",\"{BLOCKS_FUNCTION}\"")));
        assert!(text.contains(&format!("\"Function\",\"{PUBLISHER_FUNCTION}\"")));
        for metric in ["Count", "5XXError", "4XXError", "Latency"] {
            assert!(text.contains(&format!("\"{metric}\"")), "API {metric}");
        }
        // The store widgets ask what the alarms watch, for this engine.
        let namespace = if engine == "memorydb" {
            "AWS/MemoryDB"
        } else {
            "AWS/ElastiCache"
        };
        for metric in ["DatabaseMemoryUsagePercentage", "EngineCPUUtilization"] {
            let query = format!("SELECT MAX({metric}) FROM \"{namespace}\" WHERE ");
            let found = rows.iter().any(|row| {
                row[0]["expression"]
                    .as_str()
                    .is_some_and(|e| e.starts_with(&query))
            });
            assert!(found, "{engine}: {query}");
        }
    }
    // The variables' two values are exactly the alarms' filters.
    let dashboard = resource("Dashboard");
    assert!(has_line(
        dashboard,
        "- !Sub \"ClusterName = '${StoreName}'\""
    ));
    assert!(has_line(
        dashboard,
        "- !Sub \"CacheClusterId LIKE '${RedisReplicationGroup}-%'\""
    ));
}

#[test]
fn each_publisher_group_has_its_schedule_and_room_for_its_runs() {
    use cubewalk_server::store::FeedGroup;
    // The group counts allowed are counts the feed can be split into.
    let parameter = entry("Parameters", "PublisherGroups");
    assert!(has_line(parameter, "Default: \"1\""), "{parameter}");
    let counts = [1usize, 2, 4, 8];
    assert!(has_line(
        parameter,
        "AllowedValues: [\"1\", \"2\", \"4\", \"8\"]"
    ));
    for count in counts {
        FeedGroup::new(count - 1, count).unwrap();
    }
    // What each schedule's condition means, exactly as the template defines it.
    let conditions = section("Conditions");
    let meaning: [(&str, &str, &[usize]); 3] = [
        (
            "HasPublisherGroup1",
            "HasPublisherGroup1: !Not [!Equals [!Ref PublisherGroups, \"1\"]]",
            &[2, 4, 8],
        ),
        (
            "HasPublisherGroups2To3",
            "HasPublisherGroups2To3: !Or [!Equals [!Ref PublisherGroups, \"4\"], !Equals [!Ref PublisherGroups, \"8\"]]",
            &[4, 8],
        ),
        (
            "HasPublisherGroups4To7",
            "HasPublisherGroups4To7: !Equals [!Ref PublisherGroups, \"8\"]",
            &[8],
        ),
    ];
    for (_, line, _) in meaning {
        assert!(has_line(conditions, line), "Conditions lack {line}");
    }
    let exists_with = |block: &str, count: usize| match block
        .lines()
        .find_map(|l| l.trim().strip_prefix("Condition: "))
    {
        None => true,
        Some(name) => {
            let (_, _, counts) = meaning
                .iter()
                .find(|(n, _, _)| *n == name)
                .unwrap_or_else(|| panic!("unknown condition {name}"));
            counts.contains(&count)
        }
    };
    let rules = resources_of("AWS::Events::Rule");
    for count in counts {
        // Group g's schedule (and its permission to invoke) exists exactly when g < count,
        // and starts the publisher with that group as input.
        let mut scheduled = Vec::new();
        for rule in &rules {
            let block = resource(rule);
            let group: usize = rule
                .strip_prefix("PublisherSchedule")
                .and_then(|g| g.parse().ok())
                .unwrap_or_else(|| panic!("{rule}: not a publisher group's schedule"));
            assert!(has_line(block, "ScheduleExpression: rate(1 minute)"));
            assert!(has_line(block, "Arn: !GetAtt PublisherFunction.Arn"));
            let input =
                format!("Input: !Sub '{{\"group\": {group}, \"groups\": ${{PublisherGroups}}}}'");
            assert!(has_line(block, &input), "{rule} lacks {input}");
            let permission = resource(&format!("{rule}Permission"));
            assert!(has_line(
                permission,
                &format!("SourceArn: !GetAtt {rule}.Arn")
            ));
            assert!(has_line(permission, "Principal: events.amazonaws.com"));
            assert!(has_line(permission, "FunctionName: !Ref PublisherFunction"));
            assert_eq!(exists_with(block, count), exists_with(permission, count));
            if exists_with(block, count) {
                scheduled.push(group);
            }
        }
        scheduled.sort_unstable();
        assert_eq!(scheduled, (0..count).collect::<Vec<_>>(), "{count} groups");
        // Two runs of each group overlap at a handover (90 s runs every minute), and one to
        // spare.
        let reserved: usize = entry("Mappings", "PublisherConcurrency")
            .lines()
            .skip_while(|l| l.trim() != format!("\"{count}\":"))
            .find_map(|l| l.trim().strip_prefix("Reserved: "))
            .unwrap_or_else(|| panic!("no reserved concurrency for {count} groups"))
            .parse()
            .unwrap();
        assert!(reserved > 2 * count, "{count} groups, {reserved} reserved");
    }
    let publisher = resource("PublisherFunction");
    assert!(has_line(
        publisher,
        "ReservedConcurrentExecutions: !FindInMap [PublisherConcurrency, !Ref PublisherGroups, Reserved]"
    ));
    assert!(has_line(publisher, "CUBEWALK_PUBLISHER_RUN_SECS: \"90\""));
    // No schedule of SAM's own: it could not be conditional, and would start a run of the
    // whole feed beside the groups'.
    assert!(!publisher.contains("Events:"), "{publisher}");
}
