//! What several server test files share.

use cubewalk_testkit::RedisServer;

/// Creates on `redis` the Redis user the deployment's Lambdas connect as, with exactly the
/// `AccessString` of `server/template.yaml`, and answers a URL that logs in as it.
pub fn template_user_url(redis: &RedisServer, user: &str) -> String {
    let template = include_str!("../../template.yaml");
    let access = template
        .lines()
        .skip_while(|l| l.trim() != format!("UserName: {user}"))
        .find_map(|l| l.trim().strip_prefix("AccessString: \"on "))
        .unwrap_or_else(|| panic!("the {user} user's AccessString in template.yaml"))
        .trim_end_matches('"');
    let mut setuser = vec!["ACL", "SETUSER", user, "reset", "on", ">acl-test-pass"];
    setuser.extend(access.split_whitespace());
    assert_eq!(redis.command(&setuser).as_deref(), Some("+OK"), "{access}");
    format!("redis://{user}:acl-test-pass@127.0.0.1:{}", redis.port)
}
