//! Logs: to stderr, as text (colours only on a terminal) or one JSON object
//! per line (`--log-format json`), at the level `--log-level` sets, else
//! `SHARDLINE_LOG` (an env-filter: `info`, `shardline_meta=debug,warn`…),
//! else the command's default. Log lines carry ids and sizes, never a key,
//! file contents or a file name.

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (for log collectors).
    Json,
}

/// What the user asked for on the command line.
#[derive(Clone, Debug, Default)]
pub struct LogOptions {
    pub level: Option<String>,
    pub format: LogFormat,
}

/// Start logging for a command whose default level is `default`, with
/// `extra` directives (for example `fuser=warn`) added.
pub fn init(opts: &LogOptions, default: &str, extra: &[&str]) {
    let mut filter = match &opts.level {
        Some(level) => EnvFilter::try_new(level).unwrap_or_else(|e| {
            eprintln!("warning: --log-level {level:?} is not a level or filter ({e}); using {default}");
            EnvFilter::new(default)
        }),
        None => EnvFilter::try_from_env("SHARDLINE_LOG").unwrap_or_else(|_| EnvFilter::new(default)),
    };
    for d in extra {
        if let Ok(d) = d.parse() {
            filter = filter.add_directive(d);
        }
    }
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match opts.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).try_init(),
    };
}
