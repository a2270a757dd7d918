//! Structured logs with `tracing`: human text by default, JSON lines for log shippers.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::LogFormat;

/// Installs the global subscriber once. The filter comes from `SWITCHBOARD_LOG` or `RUST_LOG`
/// (default `info`). Safe to call twice: the second call is ignored.
pub fn init(format: LogFormat) {
    init_with_default(format, "info,sqlx=warn");
}

/// As `init`, with another filter when neither variable is set (the simulator and the demo
/// log only warnings: a line per simulated request would bury their reports).
pub fn init_with_default(format: LogFormat, default_filter: &str) {
    let filter = std::env::var("SWITCHBOARD_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .map(EnvFilter::new)
        .unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_span_events(FmtSpan::NONE);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Consecutive failures of a background pass (the database away, mostly), logged at the first
/// and then at every power of two: a long outage is reported without flooding the log.
#[derive(Debug, Default)]
pub struct Outage {
    failures: u32,
}

impl Outage {
    /// Records a pass's outcome; returns the failures in a row (0 after a success).
    pub fn record<T, E: Into<anyhow::Error>>(
        &mut self,
        outcome: Result<T, E>,
        waiting: &str,
    ) -> u32 {
        match outcome {
            Ok(_) => self.failures = 0,
            Err(e) => {
                self.failures += 1;
                if self.failures == 1 || self.failures.is_power_of_two() {
                    tracing::warn!(
                        error = format!("{:#}", e.into()),
                        failures = self.failures,
                        "{waiting}"
                    );
                }
            }
        }
        self.failures
    }
}
