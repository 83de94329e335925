//! Progress renderers: build events and push/pull transfers, on stderr
//! (bars on a terminal, lines otherwise, JSON lines with `--progress json`).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::build::Event;
use crate::registry::{Outcome, Progress};

use super::ProgressMode;

/// `auto` made concrete: a terminal gets bars, anything else lines.
pub(super) fn progress_mode(m: ProgressMode) -> ProgressMode {
    match m {
        ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Tty,
        ProgressMode::Auto => ProgressMode::Plain,
        m => m,
    }
}

fn short(d: &crate::digest::Digest) -> String {
    let h = d.hex();
    h[..12.min(h.len())].to_string()
}

/// Renders push/pull progress on stderr: bars on a terminal, a line per
/// blob otherwise, JSON lines with `--progress json`.
pub(super) struct TransferView {
    mode: ProgressMode,
    quiet: bool,
    console: Console,
    bars: Mutex<BTreeMap<crate::digest::Digest, ProgressBar>>,
}

/// Where progress lines go: stderr, or above the bars on a terminal.
struct Console {
    multi: Option<MultiProgress>,
}

impl Console {
    fn new(mode: ProgressMode) -> Self {
        Console {
            multi: (mode == ProgressMode::Tty).then(MultiProgress::new),
        }
    }

    fn line(&self, s: String) {
        match &self.multi {
            // Bars cleared, a whole line ended with a newline, bars drawn
            // again: a recorded terminal (`script`, tmux) reads line by line
            // (indicatif's own println pads to the width without one).
            Some(m) => m.suspend(|| errln!("{s}")),
            None => errln!("{s}"),
        }
    }
}

impl TransferView {
    pub(super) fn new(mode: ProgressMode, quiet: bool) -> Self {
        TransferView {
            mode,
            quiet,
            console: Console::new(mode),
            bars: Mutex::new(BTreeMap::new()),
        }
    }

    fn line(&self, s: String) {
        self.console.line(s);
    }

    pub(super) fn event(&self, p: Progress) {
        if self.quiet {
            return;
        }
        if self.mode == ProgressMode::Json {
            let v = match &p {
                Progress::Start { digest, size } => {
                    serde_json::json!({"event": "start", "digest": digest, "size": size})
                }
                Progress::Bytes { .. } => return,
                Progress::Done { digest, outcome } => {
                    serde_json::json!({"event": "done", "digest": digest, "outcome": format!("{outcome:?}")})
                }
                Progress::Manifest {
                    reference,
                    digest,
                    media_type,
                } => serde_json::json!({
                    "event": "manifest", "reference": reference,
                    "digest": digest, "mediaType": media_type
                }),
            };
            errln!("{v}");
            return;
        }
        match p {
            Progress::Start { digest, size } => {
                if let Some(m) = &self.console.multi {
                    let bar = m.add(ProgressBar::new(size));
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{prefix} [{bar:30}] {bytes}/{total_bytes} {wide_msg}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    );
                    bar.set_prefix(short(&digest));
                    if let Ok(mut b) = self.bars.lock() {
                        b.insert(digest, bar);
                    }
                }
            }
            Progress::Bytes { digest, done } => {
                if let Ok(b) = self.bars.lock()
                    && let Some(bar) = b.get(&digest)
                {
                    bar.set_position(done);
                }
            }
            Progress::Done { digest, outcome } => {
                if let Ok(mut b) = self.bars.lock()
                    && let Some(bar) = b.remove(&digest)
                {
                    bar.finish_and_clear();
                    if let Some(m) = &self.console.multi {
                        m.remove(&bar);
                    }
                }
                let what = match outcome {
                    Outcome::Uploaded => "uploaded".to_string(),
                    Outcome::Exists => "already present".to_string(),
                    Outcome::Mounted { from } => format!("mounted from {from}"),
                    Outcome::Downloaded => "downloaded".to_string(),
                    Outcome::Cached => "already in the store".to_string(),
                };
                self.line(format!("=> blob {} {what}", short(&digest)));
            }
            Progress::Manifest {
                reference, digest, ..
            } => self.line(format!("=> manifest {reference} {digest}")),
        }
    }

    pub(super) fn finish(&self) {
        if let Ok(mut b) = self.bars.lock() {
            for (_, bar) in std::mem::take(&mut *b) {
                bar.finish_and_clear();
            }
        }
    }
}

/// Renders build events on stderr.
pub(super) struct Renderer {
    mode: ProgressMode,
    console: Console,
    bars: Mutex<BTreeMap<String, ProgressBar>>,
}

impl Renderer {
    pub(super) fn new(mode: ProgressMode) -> Self {
        Renderer {
            mode,
            console: Console::new(mode),
            bars: Mutex::new(BTreeMap::new()),
        }
    }

    fn line(&self, s: String) {
        self.console.line(s);
    }

    pub(super) fn event(&self, e: Event) {
        if self.mode == ProgressMode::Json {
            if let Ok(s) = serde_json::to_string(&e) {
                errln!("{s}");
            }
            return;
        }
        match e {
            Event::Plan {
                steps,
                cached,
                to_run,
            } => self.line(format!(
                "=> plan: {steps} steps, {cached} cached, {to_run} to run"
            )),
            Event::Started { id, name, .. } => {
                if let Some(m) = &self.console.multi {
                    let bar = m.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template("{spinner} [{prefix}] {wide_msg} {elapsed}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    bar.set_prefix(id.clone());
                    bar.set_message(name);
                    bar.enable_steady_tick(Duration::from_millis(100));
                    if let Ok(mut b) = self.bars.lock() {
                        b.insert(id, bar);
                    }
                } else {
                    self.line(format!("=> [{id}] {name}"));
                }
            }
            Event::Cached { id, name, .. } => self.line(format!("=> [{id}] CACHED {name}")),
            Event::Finished {
                id, name, seconds, ..
            } => {
                self.remove_bar(&id);
                self.line(format!("=> [{id}] DONE {seconds:.2}s {name}"));
            }
            Event::Layer {
                id, seconds, size, ..
            } => self.line(format!("=> [{id}] LAYER {seconds:.2}s {size} bytes")),
            Event::Failed { id, name, .. } => {
                self.remove_bar(&id);
                self.line(format!("=> [{id}] FAILED {name}"));
            }
            Event::Warning { message, .. } => self.line(format!("warning: {message}")),
            Event::Log { id, line, .. } => self.line(format!("   [{id}] {line}")),
        }
    }

    fn remove_bar(&self, id: &str) {
        if let Ok(mut b) = self.bars.lock()
            && let Some(bar) = b.remove(id)
        {
            bar.finish_and_clear();
            if let Some(m) = &self.console.multi {
                m.remove(&bar);
            }
        }
    }

    pub(super) fn finish(&self) {
        if let Ok(mut b) = self.bars.lock() {
            for (_, bar) in std::mem::take(&mut *b) {
                bar.finish_and_clear();
            }
        }
    }
}
