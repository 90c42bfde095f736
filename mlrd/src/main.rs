//! mlrd, the TMip Mobile Location Register: command line, start-up order
//! and the banner. Start-up errors go to stderr and exit non-zero; once
//! the MLR is up, everything is logged and survived.

mod config;
mod journal;
mod pair;
mod register;
mod server;
mod service;
mod status;

use config::MlrdConfig;
use log::{info, warn};
use std::process::ExitCode;
use std::time::Instant;

const USAGE: &str = "usage: mlrd [-f FILE | -u SECTION [-c UCI_FILE]] [-F] [-D N] [-h] [-V]
  -f FILE     configuration file (default ./mlrd.rc)
  -u SECTION  read the UCI section SECTION (type mlrd; a name or @mlrd[N])
  -c UCI_FILE the UCI file for -u (default /etc/config/tmip)
  -F       stay in the foreground, log to the terminal
  -D N     debug level 0..7 (overrides debug_level)
  -h       this help
  -V       print the version and exit
Signals: HUP re-reads the configuration, USR1 writes the status to
status_file, USR2 steps the debug level, TERM/INT save state and exit.";

/// What the command line asked for.
#[derive(Debug, Default, PartialEq, Eq)]
struct Args {
    file: Option<String>,
    uci_section: Option<String>,
    uci_file: Option<String>,
    foreground: bool,
    debug: Option<u8>,
    help: bool,
    version: bool,
}

fn parse_args(argv: &[String]) -> Result<Args, String> {
    let mut a = Args::default();
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        // Accept bundled flags as TMip did (`-Ff mlrd.rc`, `-FD5`).
        let Some(flags) = arg.strip_prefix('-').filter(|f| !f.is_empty()) else {
            return Err(format!("unexpected argument '{arg}'"));
        };
        for (i, c) in flags.char_indices() {
            match c {
                'F' => a.foreground = true,
                'h' => a.help = true,
                'V' => a.version = true,
                'f' | 'D' | 'u' | 'c' => {
                    let rest = &flags[i + 1..];
                    let v = if rest.is_empty() {
                        it.next()
                            .cloned()
                            .ok_or_else(|| format!("-{c} needs a value"))?
                    } else {
                        rest.to_string()
                    };
                    if c == 'f' {
                        a.file = Some(v);
                    } else if c == 'u' {
                        a.uci_section = Some(v);
                    } else if c == 'c' {
                        a.uci_file = Some(v);
                    } else {
                        let n: u8 = v
                            .parse()
                            .ok()
                            .filter(|n| *n <= tmip::logging::MAX_LEVEL)
                            .ok_or_else(|| format!("-D: bad debug level '{v}' (0..7)"))?;
                        a.debug = Some(n);
                    }
                    break;
                }
                _ => return Err(format!("unknown option -{c}")),
            }
        }
    }
    if a.file.is_some() && a.uci_section.is_some() {
        return Err("-f and -u exclude each other".into());
    }
    if a.uci_file.is_some() && a.uci_section.is_none() {
        return Err("-c needs -u SECTION".into());
    }
    Ok(a)
}

/// CPU time (user + system) this process has used, in milliseconds: the
/// start-up figure that does not depend on what else runs on the machine.
fn cpu_ms() -> u64 {
    tmip::sys::process::cpu_time().map_or(0, |t| t.as_millis() as u64)
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mlrd: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if args.help {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if args.version {
        println!("mlrd {}", tmip::VERSION);
        return ExitCode::SUCCESS;
    }
    match start(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mlrd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn start(args: Args) -> Result<ExitCode, String> {
    let t0 = Instant::now();
    println!("+ Starting MLR Server [{}]", tmip::VERSION);
    println!("+ Loading settings from configuration file...");
    let source = match &args.uci_section {
        Some(section) => config::Source::Uci {
            file: args
                .uci_file
                .clone()
                .unwrap_or_else(|| config::UCI_FILE.to_string()),
            section: section.clone(),
        },
        None => config::Source::Rc(args.file.clone().unwrap_or_else(|| "mlrd.rc".to_string())),
    };
    println!("+ Using {source}");
    let cfg = MlrdConfig::load_source(&source).map_err(|e| e.to_string())?;
    let foreground = args.foreground || cfg.foreground;
    let level = args.debug.unwrap_or(cfg.debug_level);
    let nofile = tmip::process_setup::raise_nofile();

    // Everything that can fail is opened before detaching, so a bad state
    // directory or a busy port is reported on the terminal.
    let mut reg = register::Register::new(&cfg.network_name, cfg.lease_time, cfg.cn_timeout);
    reg.set_offer_time(cfg.offer_time);
    reg.set_foreign_share(cfg.foreign_share);
    let load_t = Instant::now();
    let load_cpu = cpu_ms();
    let (journal, report) =
        journal::Journal::open(&cfg.state_dir, &mut reg).map_err(|e| format!("state_dir: {e}"))?;
    let load_ms = load_t.elapsed().as_millis();
    let mut journal = journal;
    // Test hook: compact after this many journal bytes (default 16 MB), so
    // tests can exercise compaction without writing megabytes.
    if let Some(n) = std::env::var("MLRD_COMPACT_MIN_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        journal.set_compact_min(n);
    }
    let load_cpu = cpu_ms().saturating_sub(load_cpu);
    let listener = server::listen(cfg.port).map_err(|e| format!("port {}: {e}", cfg.port))?;

    if !foreground {
        if cfg.log {
            println!("+ Switching into daemon mode (Logging to {})", cfg.log_file);
        } else {
            println!("+ Switching into daemon mode (logging off)");
        }
        // Open the log file now, so a bad path is a start-up error.
        if cfg.log {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&cfg.log_file)
                .map_err(|e| format!("log_file {}: {e}", cfg.log_file))?;
        }
        tmip::process_setup::daemonize().map_err(|e| format!("daemon mode: {e}"))?;
    }
    let sink = match (cfg.log, foreground) {
        (false, _) => tmip::logging::Sink::Off,
        (true, true) => tmip::logging::Sink::Stderr,
        (true, false) => tmip::logging::Sink::File(cfg.log_file.clone()),
    };
    tmip::logging::init(sink, level).map_err(|e| format!("log_file {}: {e}", cfg.log_file))?;

    info!(
        "+ Logging started for Mobile Location Register [{}]",
        tmip::VERSION
    );
    info!("+ Serving network [{}].", cfg.network_name);
    if cfg.secret.is_none() {
        warn!("! No 'secret' set: MLRP frames are NOT authenticated. Set one in {source}.");
    }
    info!("+ Bringing up MLR services...");
    let max_conns = cfg.max_connections.min(nofile.saturating_sub(32) as usize);
    if max_conns < cfg.max_connections {
        warn!(
            "! max_connections {} lowered to {max_conns} by the open-file limit ({nofile})",
            cfg.max_connections
        );
    }
    info!("[Session Dispatcher (port {})]: Done.", cfg.port);
    if let Some((off, len)) = report.torn {
        warn!(
            "! journal.{}: torn last record ({len} bytes at offset {off}) ignored: it was never acknowledged",
            report.generation
        );
    }
    info!(
        "[MLRCache]: Done. ({} bindings restored from {}: snapshot {} + {} journal records, {} ms (cpu {} ms): read {}, apply {}, pools {})",
        reg.binding_count(),
        cfg.state_dir,
        report.snapshot_bindings,
        report.journal_records,
        load_ms,
        load_cpu,
        report.read_ms,
        report.apply_ms,
        report.rebuild_ms
    );
    info!(
        "[CNList]: Done. ({} CNs known, all down until they bind)",
        reg.cns().len()
    );
    let epoch = journal::read_epoch(&cfg.state_dir);
    let pair = match (&cfg.backup_mlr, &cfg.primary_mlr) {
        (Some(b), _) => {
            let a = server::peer_addr(b).map_err(|e| format!("backup_mlr: {e}"))?;
            info!("[Replication]: primary of the pair; backup register {a}; epoch {epoch}");
            pair::Pair::new(Some(a), true, epoch)
        }
        (None, Some(p)) => {
            let a = server::peer_addr(p).map_err(|e| format!("primary_mlr: {e}"))?;
            info!("[Replication]: backup of the pair; primary register {a}; epoch {epoch}");
            pair::Pair::new(Some(a), false, epoch)
        }
        (None, None) => pair::Pair::new(None, false, epoch),
    };
    let mut srv = server::Server::new(server::Setup {
        cfg,
        source,
        debug_override: args.debug,
        reg,
        journal,
        listener,
        conn_ceiling: nofile.saturating_sub(32) as usize,
        pair,
    })
    .map_err(|e| format!("start: {e}"))?;
    info!(
        "+ MLR up and listening... (started in {} ms)",
        t0.elapsed().as_millis()
    );
    Ok(match srv.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("! mlrd stopped: {e}");
            ExitCode::FAILURE
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &[&str]) -> Result<Args, String> {
        parse_args(&s.iter().map(|x| x.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn options_parse_alone_and_bundled() {
        let a = p(&["-f", "x.rc", "-F", "-D", "5"]).unwrap();
        assert_eq!(a.file.as_deref(), Some("x.rc"));
        assert!(a.foreground);
        assert_eq!(a.debug, Some(5));
        let b = p(&["-Ff", "y.rc", "-D7"]).unwrap();
        assert_eq!(b.file.as_deref(), Some("y.rc"));
        assert!(b.foreground);
        assert_eq!(b.debug, Some(7));
        assert!(p(&["-D", "8"]).is_err());
        assert!(p(&["-x"]).is_err());
        assert!(p(&["-f"]).is_err());
        assert!(p(&["stray"]).is_err());
        assert!(p(&["-V"]).unwrap().version);
        let u = p(&["-F", "-u", "mlr", "-c", "/tmp/tmip"]).unwrap();
        assert_eq!(u.uci_section.as_deref(), Some("mlr"));
        assert_eq!(u.uci_file.as_deref(), Some("/tmp/tmip"));
        assert!(p(&["-u", "mlr", "-f", "x"]).is_err());
        assert!(p(&["-c", "/tmp/tmip"]).is_err());
    }
}
