//! Shared set-up of the two Lambda binaries (`authorizer`, `blocks`).

/// JSON logs on stdout, one object per line, as CloudWatch Logs Insights reads them. Level from
/// `RUST_LOG` (default `info`). Handlers never log tokens or request headers.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_current_span(false)
        .with_ansi(false)
        .with_target(false)
        .init();
}
