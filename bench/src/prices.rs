//! AWS list prices the cost model uses: us-east-1, on demand, no free tier, no savings plan,
//! first pricing tier. Every figure in BENCHMARKS.md's cost table comes from these and the
//! measurements; change a price here and rerun `cargo run --release -p cubewalk-bench -- cost`.

/// When these prices were read.
pub(crate) const READ_ON: &str = "2026-12-06";

/// One price: what it is, US dollars per `per` units, and where it was read.
pub(crate) struct Price {
    pub(crate) what: &'static str,
    pub(crate) usd: f64,
    pub(crate) per: f64,
    pub(crate) unit: &'static str,
    pub(crate) source: &'static str,
}

impl Price {
    /// The cost of `units` units.
    pub(crate) fn of(&self, units: f64) -> f64 {
        self.usd / self.per * units
    }
}

const LAMBDA: &str = "https://aws.amazon.com/lambda/pricing/";
const API_GATEWAY: &str = "https://aws.amazon.com/api-gateway/pricing/";
const ELASTICACHE: &str = "https://aws.amazon.com/elasticache/pricing/";
const CLOUDWATCH: &str = "https://aws.amazon.com/cloudwatch/pricing/";
const WAF: &str = "https://aws.amazon.com/waf/pricing/";
const SECRETS: &str = "https://aws.amazon.com/secrets-manager/pricing/";
const EC2_TRANSFER: &str = "https://aws.amazon.com/ec2/pricing/on-demand/ (data transfer)";
const IOT_CORE: &str = "https://aws.amazon.com/iot-core/pricing/";
const PRIVATELINK: &str = "https://aws.amazon.com/privatelink/pricing/";
const ROUTE53: &str = "https://aws.amazon.com/route53/pricing/";

/// Lambda requests (both architectures).
pub(crate) const LAMBDA_REQUEST: Price = Price {
    what: "Lambda requests",
    usd: 0.20,
    per: 1e6,
    unit: "requests",
    source: LAMBDA,
};
/// Lambda duration on arm64 (Graviton), first tier; since August 2025 the init phase of
/// on-demand functions is billed the same way.
pub(crate) const LAMBDA_ARM_GB_SECOND: Price = Price {
    what: "Lambda duration, arm64",
    usd: 0.000_013_333_4,
    per: 1.0,
    unit: "GB-second",
    source: LAMBDA,
};
/// REST API requests, first 333 million a month.
pub(crate) const REST_REQUEST: Price = Price {
    what: "API Gateway REST API requests",
    usd: 3.50,
    per: 1e6,
    unit: "requests",
    source: API_GATEWAY,
};
/// AWS IoT Core messaging: every message published to the broker and every delivery to a
/// subscriber, metered in 5 KB increments, first billion a month.
pub(crate) const IOT_MESSAGE: Price = Price {
    what: "AWS IoT Core messages (published or delivered, per 5 KB)",
    usd: 1.00,
    per: 1e6,
    unit: "messages",
    source: IOT_CORE,
};
/// AWS IoT Core connectivity: minutes a device stays connected.
pub(crate) const IOT_CONNECTION_MINUTE: Price = Price {
    what: "AWS IoT Core connection minutes",
    usd: 0.08,
    per: 1e6,
    unit: "connection-minutes",
    source: IOT_CORE,
};
/// An interface VPC endpoint in one Availability Zone (the template has two endpoints, Secrets
/// Manager and IoT data, in two zones).
pub(crate) const VPC_ENDPOINT_HOUR: Price = Price {
    what: "Interface VPC endpoint, per Availability Zone",
    usd: 0.01,
    per: 1.0,
    unit: "endpoint-AZ-hour",
    source: PRIVATELINK,
};
/// Data an interface VPC endpoint processes (first petabyte).
pub(crate) const VPC_ENDPOINT_GB: Price = Price {
    what: "Interface VPC endpoint data processed",
    usd: 0.01,
    per: 1.0,
    unit: "GB",
    source: PRIVATELINK,
};
/// A Route 53 hosted zone (the IoT data endpoint's private zone), per month.
pub(crate) const HOSTED_ZONE_MONTH: Price = Price {
    what: "Route 53 hosted zone",
    usd: 0.50,
    per: 1.0,
    unit: "zone-month",
    source: ROUTE53,
};
/// The template's default store node (`RedisNodeType`), ElastiCache for Redis OSS, on demand.
pub(crate) const CACHE_NODE_HOUR: Price = Price {
    what: "ElastiCache cache.t4g.small node",
    usd: 0.032,
    per: 1.0,
    unit: "node-hour",
    source: ELASTICACHE,
};
/// CloudWatch Logs ingestion (standard class).
pub(crate) const LOG_GB: Price = Price {
    what: "CloudWatch Logs ingestion",
    usd: 0.50,
    per: 1.0,
    unit: "GB",
    source: CLOUDWATCH,
};
/// Data transfer out to the internet, first 10 TB a month.
pub(crate) const TRANSFER_OUT_GB: Price = Price {
    what: "Data transfer out to the internet",
    usd: 0.09,
    per: 1.0,
    unit: "GB",
    source: EC2_TRANSFER,
};

/// AWS WAF: every request to the REST stage the web ACL is attached to is inspected.
pub(crate) const WAF_REQUEST: Price = Price {
    what: "AWS WAF requests inspected",
    usd: 0.60,
    per: 1e6,
    unit: "requests",
    source: WAF,
};
/// AWS WAF: the web ACL and its one rule (guest logins per IP), per month.
pub(crate) const WAF_ACL_MONTH: Price = Price {
    what: "AWS WAF web ACL with one rule",
    usd: 6.00,
    per: 1.0,
    unit: "month",
    source: WAF,
};
/// Secrets Manager: one secret stored for a month (the template keeps four).
pub(crate) const SECRET_MONTH: Price = Price {
    what: "Secrets Manager secret",
    usd: 0.40,
    per: 1.0,
    unit: "secret-month",
    source: SECRETS,
};

/// Hours in the month the monthly prices are spread over.
pub(crate) const HOURS_PER_MONTH: f64 = 730.0;

/// Every price, for the report's price table.
pub(crate) const ALL: [&Price; 14] = [
    &LAMBDA_REQUEST,
    &LAMBDA_ARM_GB_SECOND,
    &REST_REQUEST,
    &IOT_MESSAGE,
    &IOT_CONNECTION_MINUTE,
    &CACHE_NODE_HOUR,
    &VPC_ENDPOINT_HOUR,
    &VPC_ENDPOINT_GB,
    &HOSTED_ZONE_MONTH,
    &LOG_GB,
    &TRANSFER_OUT_GB,
    &WAF_REQUEST,
    &WAF_ACL_MONTH,
    &SECRET_MONTH,
];
