//! Logging with TMip's debug levels 0..7 mapped onto `log` targets.
//!
//! | level | shows |
//! |---|---|
//! | 0 | errors |
//! | 1 | + warnings |
//! | 2 | + start-up and status lines (the default) |
//! | 3 | + each handover (`handover`, `tunnel` at debug) |
//! | 4 | + DHCP, capture, CN and register detail (debug on other targets) |
//! | 5 | + every MLRP frame (`mlrp` at debug/trace) |
//! | 6 | + trace on all targets but per-packet ones |
//! | 7 | everything, including per-packet traces (`packet`) |
//!
//! The level can change at run time (console `debug N`, SIGUSR2), so the
//! filter reads an atomic. Output goes through simplelog to stderr (the
//! foreground, and procd which adds its own timestamps) or to a log file
//! (daemon mode, with timestamps).

use log::{Level, LevelFilter, Log, Metadata, Record};
use simplelog::{ConfigBuilder, SharedLogger, WriteLogger};
use std::fs::OpenOptions;
use std::io;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

pub const DEFAULT_LEVEL: u8 = 2;
pub const MAX_LEVEL: u8 = 7;

static LEVEL: AtomicU8 = AtomicU8::new(DEFAULT_LEVEL);
static LOGGER: OnceLock<TmipLogger> = OnceLock::new();

/// The TMip debug level at which a record of `level` on `target` is shown.
pub fn required_level(level: Level, target: &str) -> u8 {
    let sub = target.split("::").next().unwrap_or(target);
    match level {
        Level::Error => 0,
        Level::Warn => 1,
        Level::Info => 2,
        Level::Debug => match sub {
            "handover" | "tunnel" => 3,
            "mlrp" => 5,
            _ => 4,
        },
        Level::Trace => match sub {
            "mlrp" => 5,
            "packet" => 7,
            _ => 6,
        },
    }
}

pub fn level() -> u8 {
    LEVEL.load(Ordering::Relaxed)
}

/// The most verbose `log` level any target shows at TMip level `n`: the
/// `log` macros skip everything above it without formatting arguments.
pub fn max_filter(n: u8) -> LevelFilter {
    match n {
        0 => LevelFilter::Error,
        1 => LevelFilter::Warn,
        2 => LevelFilter::Info,
        3 | 4 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    }
}

/// Set the debug level (clamped to 0..=7), and `log`'s max level with it
/// (start-up, console `debug N`, USR2, HUP all come through here).
pub fn set_level(n: u8) {
    let n = n.min(MAX_LEVEL);
    LEVEL.store(n, Ordering::Relaxed);
    log::set_max_level(max_filter(n));
}

/// Step the level as SIGUSR2 does: up by one, wrapping 7 -> 0. Returns the new level.
pub fn step_level() -> u8 {
    let n = (level() + 1) % (MAX_LEVEL + 1);
    set_level(n);
    n
}

/// Where log lines go.
pub enum Sink {
    Stderr,
    /// Append to this file (daemon mode).
    File(String),
    /// Drop everything (`log false`).
    Off,
}

struct TmipLogger {
    inner: Option<Box<dyn SharedLogger>>,
}

impl Log for TmipLogger {
    fn enabled(&self, m: &Metadata) -> bool {
        self.inner.is_some() && required_level(m.level(), m.target()) <= level()
    }
    fn log(&self, r: &Record) {
        if self.enabled(r.metadata()) {
            if let Some(l) = &self.inner {
                l.log(r);
            }
        }
    }
    fn flush(&self) {
        if let Some(l) = &self.inner {
            l.flush();
        }
    }
}

/// Install the logger once per process. `level` is the starting debug level.
/// Calling it again (after a config reload) only changes the level; the sink
/// chosen first stays.
pub fn init(sink: Sink, level: u8) -> io::Result<()> {
    set_level(level);
    if LOGGER.get().is_some() {
        return Ok(());
    }
    let timestamps = matches!(sink, Sink::File(_));
    let mut cfg = ConfigBuilder::new();
    cfg.set_target_level(LevelFilter::Off)
        .set_thread_level(LevelFilter::Off)
        .set_location_level(LevelFilter::Off)
        .set_level_padding(simplelog::LevelPadding::Off);
    if timestamps {
        cfg.set_time_format_rfc3339();
        let _ = cfg.set_time_offset_to_local();
    } else {
        cfg.set_time_level(LevelFilter::Off);
    }
    // simplelog prints "[LEVEL] msg"; keep the level only where it helps.
    let config = cfg.set_max_level(LevelFilter::Off).build();
    let inner: Option<Box<dyn SharedLogger>> = match sink {
        Sink::Off => None,
        Sink::Stderr => Some(WriteLogger::new(LevelFilter::Trace, config, io::stderr())),
        Sink::File(path) => {
            let f = OpenOptions::new().create(true).append(true).open(&path)?;
            Some(WriteLogger::new(LevelFilter::Trace, config, f))
        }
    };
    let logger = LOGGER.get_or_init(|| TmipLogger { inner });
    // `log`'s max level follows the TMip level (set_level); the per-target
    // rule is checked in `enabled`.
    if log::set_logger(logger).is_ok() {
        log::set_max_level(max_filter(self::level()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_tmip_meaning() {
        assert_eq!(required_level(Level::Info, "mlrd"), 2);
        assert_eq!(required_level(Level::Debug, "handover"), 3);
        assert_eq!(required_level(Level::Debug, "dhcp"), 4);
        assert_eq!(required_level(Level::Debug, "mlrp::session"), 5);
        assert_eq!(required_level(Level::Trace, "packet"), 7);
    }

    #[test]
    fn the_max_level_admits_exactly_what_some_target_shows() {
        let all = [
            Level::Error,
            Level::Warn,
            Level::Info,
            Level::Debug,
            Level::Trace,
        ];
        let targets = ["mlrd", "handover", "tunnel", "dhcp", "mlrp", "packet"];
        for n in 0..=MAX_LEVEL {
            let shown = all
                .iter()
                .filter(|l| targets.iter().any(|t| required_level(**l, t) <= n))
                .max()
                .copied();
            assert_eq!(
                max_filter(n),
                shown
                    .map(|l| l.to_level_filter())
                    .unwrap_or(LevelFilter::Off),
                "level {n}"
            );
        }
        set_level(2);
        assert_eq!(log::max_level(), LevelFilter::Info);
        set_level(3);
        assert_eq!(log::max_level(), LevelFilter::Debug);
        set_level(DEFAULT_LEVEL);
    }
}
