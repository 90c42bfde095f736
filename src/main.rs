//! tmipd, the TMip correspondent node. Options as in TMip 0.14a
//! (`-f FILE`, `-F`, `-D N`, `-E`, `-h`, `-V`, bundled like `-Ef tmipd.rc`),
//! plus `-u SECTION [-c UCI_FILE]` for OpenWrt's UCI.

use tmip::cn::startup::{self, Options};

const USAGE: &str = "usage: tmipd [-f FILE | -u SECTION [-c UCI_FILE]] [-F] [-D N] [-E] [-h] [-V]
  -f FILE  configuration file (default ./tmipd.rc)
  -u SECTION  read the `config tmipd` SECTION (name or @tmipd[N]) of a UCI file instead
  -c UCI_FILE the UCI file for -u (default /etc/config/tmip)
  -F       stay in the foreground (console: debug N, status, clients, cns, help; Ctrl+D quits)
  -D N     debug level 0..7 (default 2; 3 shows handovers, 5 every MLRP frame)
  -E       network connectivity evaluation: MLRP ping of the MLR and every CN, then exit
  -h       this help
  -V       version";

enum Mode {
    Run,
    Evaluate,
}

fn parse(args: &[String]) -> Result<(Mode, Options), String> {
    let mut o = Options {
        config: "tmipd.rc".into(),
        ..Options::default()
    };
    let mut mode = Mode::Run;
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let Some(flags) = a.strip_prefix('-').filter(|f| !f.is_empty()) else {
            return Err(format!("unexpected argument '{a}'"));
        };
        for (pos, c) in flags.char_indices() {
            let mut value = || -> Result<String, String> {
                let rest = &flags[pos + c.len_utf8()..];
                if !rest.is_empty() {
                    Ok(rest.to_string())
                } else {
                    i += 1;
                    args.get(i)
                        .cloned()
                        .ok_or(format!("option -{c} needs a value"))
                }
            };
            match c {
                'F' => o.foreground = true,
                'E' => mode = Mode::Evaluate,
                'h' => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                'V' => {
                    println!("tmipd {}", tmip::VERSION);
                    std::process::exit(0);
                }
                'f' | 'D' | 'u' | 'c' => {
                    let v = value()?;
                    match c {
                        'f' => o.config = v,
                        'D' => {
                            let n: u8 = v
                                .parse()
                                .ok()
                                .filter(|n| *n <= tmip::logging::MAX_LEVEL)
                                .ok_or(format!("-D: want a debug level 0..7, not '{v}'"))?;
                            o.debug = Some(n);
                        }
                        'u' => o.uci_section = Some(v),
                        _ => o.uci_file = Some(v),
                    }
                    break;
                }
                other => return Err(format!("unknown option -{other}")),
            }
        }
        i += 1;
    }
    Ok((mode, o))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, opts) = match parse(&args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("tmipd: {e}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let code = match mode {
        Mode::Evaluate => tmip::cn::evaluate::run(&opts),
        Mode::Run => startup::run(opts),
    };
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn options_bundle_like_the_seed() {
        let (m, o) = parse(&args("-Ef my.rc")).unwrap();
        assert!(matches!(m, Mode::Evaluate));
        assert_eq!(o.config, "my.rc");
        let (m, o) = parse(&args("-F -D5")).unwrap();
        assert!(matches!(m, Mode::Run));
        assert!(o.foreground);
        assert_eq!(o.debug, Some(5));
        assert_eq!(o.config, "tmipd.rc");
        let (_, o) = parse(&args("-F -u main -c /tmp/tmip")).unwrap();
        assert_eq!(o.uci_section.as_deref(), Some("main"));
        assert_eq!(o.source().to_string(), "/tmp/tmip section 'main'");
        assert!(parse(&args("-D 8")).is_err());
        assert!(parse(&args("-f")).is_err());
        assert!(parse(&args("-x")).is_err());
        assert!(parse(&args("stray")).is_err());
    }
}
