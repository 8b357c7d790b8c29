//! AWS IoT Core's message broker quotas the realtime design is measured against (us-east-1
//! defaults as published; an account's own are in its Service Quotas console).

/// Where the quotas were read.
pub(crate) const SOURCE: &str =
    "https://docs.aws.amazon.com/general/latest/gr/iot-core.html (message broker)";

/// Publishes a second one connection may receive (and send); not adjustable.
pub(crate) const PUBLISHES_PER_CONNECTION_PER_SEC: f64 = 100.0;
/// Subscriptions one connection may hold; adjustable.
pub(crate) const SUBSCRIPTIONS_PER_CONNECTION: f64 = 50.0;
/// Topic filters in one SUBSCRIBE; not adjustable.
pub(crate) const FILTERS_PER_SUBSCRIBE: f64 = 8.0;
/// Connections open at once per account; adjustable.
pub(crate) const CONNECTIONS_PER_ACCOUNT: f64 = 500_000.0;
/// MQTT CONNECTs a second per account; adjustable.
pub(crate) const CONNECTS_PER_SEC: f64 = 500.0;
/// Subscriptions across all connections of an account; adjustable.
pub(crate) const SUBSCRIPTIONS_PER_ACCOUNT: f64 = 500_000.0;
/// Inbound publishes a second per account (the publisher's posts); adjustable.
pub(crate) const INBOUND_PUBLISHES_PER_SEC: f64 = 20_000.0;
/// Outbound publishes a second per account (deliveries to subscribers); adjustable.
pub(crate) const OUTBOUND_PUBLISHES_PER_SEC: f64 = 20_000.0;
