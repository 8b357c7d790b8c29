//! Shared set-up of the Lambda binaries (`authorizer`, `blocks`, `realtime`, `login`), and the
//! Secrets Manager reader ([`secrets`]) a function uses to read a secret at start.

pub mod secrets;

/// The Lambda runtime's own logging set-up, so the console's logging controls work: the level
/// from `AWS_LAMBDA_LOG_LEVEL` (else `RUST_LOG`, else `INFO`) and JSON lines when
/// `AWS_LAMBDA_LOG_FORMAT` is `JSON` (the template sets it, as CloudWatch Logs Insights reads
/// them). Handlers never log tokens or request headers.
pub fn init_logging() {
    lambda_runtime::tracing::init_default_subscriber();
}
