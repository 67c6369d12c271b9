//! Progress bars for long work (`put`, `get`, `demo`): drawn on stderr when
//! it is a terminal, silent otherwise (scripts, logs, CI), so output that
//! programs read never changes.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Below this a transfer is too short for a bar to help.
const MIN_BYTES: u64 = 16 << 20;

/// A bar over `total` bytes, labelled `what`, or a hidden one.
pub fn bytes(total: u64, what: &str) -> ProgressBar {
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    if !terminal || total < MIN_BYTES {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}")
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(what.to_string());
    bar
}
