//! One table of configuration keys per daemon, in the manner of netifd's
//! and odhcpd's `blobmsg_policy`: each key once, with its type, its default
//! (as written in a config file), whether a SIGHUP can apply it to the
//! running daemon, and the code that reads it into the typed config.
//!
//! Everything else is derived from the table: the typed config's defaults
//! (the default text is read by the key's own parser), the unknown-key and
//! set-twice errors, the repeatable keys, what a HUP applies and what it
//! names as needing a restart (a restart-only key keeps its running value,
//! so the daemon's parts never see half a reload), LuCI's defaults
//! (`openwrt/luci-app-tmip/.../tmip/defaults.js`) and the key tables of the
//! docs. tmipd's table is `config::tmipd::TABLE`, mlrd's `mlrd::config::TABLE`.

use super::rc::{OnceEach, RcLine};
use super::ConfigError;
use std::fmt::Write as _;

/// Can a SIGHUP apply the key to the running daemon?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hup {
    /// Applied at once (the daemon hands the new value to every part that
    /// uses it).
    Live,
    /// Read at start only; a HUP that changes it logs "needs a restart"
    /// and keeps the running value.
    Restart,
}

/// The value a key has when the file does not set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Default {
    /// This text, read by the key's parser like a config line.
    Value(&'static str),
    /// Not set; the text says what that means (e.g. "the cn_if address").
    Unset(&'static str),
    /// The key must be set.
    Required,
}

/// What a key's value looks like (for the docs and LuCI; the key's parser
/// is the authority, and the table's tests check that the two agree).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// `1/0`, `on/off`, `true/false`, `yes/no`.
    Bool,
    /// An unsigned integer in `min..=max`, in `unit` (may be empty).
    Uint {
        min: u64,
        max: u64,
        unit: &'static str,
    },
    /// Free text (the rest of the line).
    Text,
    /// A single word: a file or socket path, a name.
    Word,
    /// An IPv4 address.
    Ipv4,
    /// One of these words.
    Choice(&'static [&'static str]),
    /// Several words, described by the text (`IFACE FIRST LAST`).
    Words(&'static str),
}

impl std::fmt::Display for Type {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Type::Bool => f.write_str("bool"),
            Type::Uint { min, max, unit } => {
                if *max >= u64::from(u32::MAX) {
                    write!(f, "{min} or more")?;
                } else {
                    write!(f, "{min}..{max}")?;
                }
                if !unit.is_empty() {
                    write!(f, " {unit}")?;
                }
                Ok(())
            }
            Type::Text => f.write_str("text"),
            Type::Word => f.write_str("word"),
            Type::Ipv4 => f.write_str("IPv4 address"),
            Type::Choice(c) => f.write_str(&c.join("\\|")),
            Type::Words(w) => f.write_str(w),
        }
    }
}

/// How a HUP compares a key's running and new values and keeps the running
/// one. Made by [`field!`](crate::field) for a plain struct field.
pub struct Field<C: 'static> {
    pub same: fn(&C, &C) -> bool,
    pub keep: fn(&mut C, &C),
}

/// `Field` for the struct field `$f`: equal by `==`, kept by `clone`.
#[macro_export]
macro_rules! field {
    ($f:ident) => {
        $crate::config::keys::Field {
            same: |a, b| a.$f == b.$f,
            keep: |n, o| n.$f = o.$f.clone(),
        }
    };
}

/// A boolean key for the struct field of the same name.
#[macro_export]
macro_rules! bool_key {
    ($name:ident, $default:literal, $hup:ident) => {
        $crate::config::keys::Key {
            name: stringify!($name),
            ty: $crate::config::keys::Type::Bool,
            default: $crate::config::keys::Default::Value($default),
            hup: $crate::config::keys::Hup::$hup,
            list: false,
            set: |c, l, f| {
                c.$name = l.boolean(f)?;
                Ok(())
            },
            field: $crate::field!($name),
        }
    };
}

/// A one-word key (a path) for the `String` field of the same name.
#[macro_export]
macro_rules! word_key {
    ($name:ident, $default:literal, $hup:ident) => {
        $crate::config::keys::Key {
            name: stringify!($name),
            ty: $crate::config::keys::Type::Word,
            default: $crate::config::keys::Default::Value($default),
            hup: $crate::config::keys::Hup::$hup,
            list: false,
            set: |c, l, f| {
                c.$name = l.single(f)?.to_string();
                Ok(())
            },
            field: $crate::field!($name),
        }
    };
}

/// An unsigned key (`$t` field of the same name) in `min..=max`: the
/// bounds are written once, for the parser and the docs/LuCI alike.
#[macro_export]
macro_rules! uint_key {
    ($name:ident: $t:ty, $min:expr, $max:expr, $unit:literal, $default:literal, $hup:ident) => {
        $crate::config::keys::Key {
            name: stringify!($name),
            ty: $crate::config::keys::Type::Uint {
                min: $min as u64,
                max: $max as u64,
                unit: $unit,
            },
            default: $crate::config::keys::Default::Value($default),
            hup: $crate::config::keys::Hup::$hup,
            list: false,
            set: |c, l, f| {
                let n: $t = l.parse(f)?;
                $crate::config::keys::check_range(l, f, n as u64, $min as u64, $max as u64, $unit)?;
                c.$name = n;
                Ok(())
            },
            field: $crate::field!($name),
        }
    };
}

/// `Err` naming the line when `n` is not in `min..=max`.
pub fn check_range(
    l: &RcLine<'_>,
    file: &str,
    n: u64,
    min: u64,
    max: u64,
    unit: &str,
) -> Result<(), ConfigError> {
    if (min..=max).contains(&n) {
        return Ok(());
    }
    let unit = if unit.is_empty() {
        String::new()
    } else {
        format!(" {unit}")
    };
    Err(if max >= u64::from(u32::MAX) {
        l.error(file, format!("{n}: want at least {min}{unit}"))
    } else {
        l.error(file, format!("{n}: want {min}..{max}{unit}"))
    })
}

/// An optional one-word key (`Option<String>` field of the same name),
/// unset by default.
#[macro_export]
macro_rules! opt_word_key {
    ($name:ident, $ty:expr, $hup:ident) => {
        $crate::config::keys::Key {
            name: stringify!($name),
            ty: $ty,
            default: $crate::config::keys::Default::Unset("none"),
            hup: $crate::config::keys::Hup::$hup,
            list: false,
            set: |c, l, f| {
                c.$name = Some(l.single(f)?.to_string());
                Ok(())
            },
            field: $crate::field!($name),
        }
    };
}

/// `debug_level` (0..7, default 2) for the `u8` field `debug_level`.
#[macro_export]
macro_rules! debug_level_key {
    ($hup:ident) => {
        $crate::config::keys::Key {
            name: "debug_level",
            ty: $crate::config::keys::Type::Uint {
                min: 0,
                max: $crate::logging::MAX_LEVEL as u64,
                unit: "",
            },
            default: $crate::config::keys::Default::Value("2"),
            hup: $crate::config::keys::Hup::$hup,
            list: false,
            set: |c, l, f| {
                let n: u8 = l.parse(f)?;
                if n > $crate::logging::MAX_LEVEL {
                    return Err(l.error(f, format!("{n} is out of range 0..7")));
                }
                c.debug_level = n;
                Ok(())
            },
            field: $crate::field!(debug_level),
        }
    };
}

/// `secret` (the rest of the line; none: frames not authenticated) for
/// the `Option<String>` field `secret`.
#[macro_export]
macro_rules! secret_key {
    ($hup:ident) => {
        $crate::config::keys::Key {
            name: "secret",
            ty: $crate::config::keys::Type::Text,
            default: $crate::config::keys::Default::Unset(
                "none (frames not authenticated; warned)",
            ),
            hup: $crate::config::keys::Hup::$hup,
            list: false,
            set: |c, l, f| {
                if l.rest.is_empty() {
                    return Err(l.error(f, "missing value"));
                }
                c.secret = Some(l.rest.to_string());
                Ok(())
            },
            field: $crate::field!(secret),
        }
    };
}

/// `network_name` (required; the rest of the line, 1..64 bytes as MLRP's
/// Hello carries it) for the `String` field `network_name`. Both daemons
/// must agree on it, so both read it through this one key.
#[macro_export]
macro_rules! network_name_key {
    () => {
        $crate::config::keys::Key {
            name: "network_name",
            ty: $crate::config::keys::Type::Text,
            default: $crate::config::keys::Default::Required,
            hup: $crate::config::keys::Hup::Restart,
            list: false,
            set: |c, l, f| {
                if l.rest.is_empty() {
                    return Err(l.error(f, "missing value"));
                }
                if l.rest.len() > 64 {
                    return Err(l.error(f, "longer than 64 bytes"));
                }
                c.network_name = l.rest.to_string();
                Ok(())
            },
            field: $crate::field!(network_name),
        }
    };
}

/// One configuration key.
pub struct Key<C: 'static> {
    pub name: &'static str,
    pub ty: Type,
    pub default: Default,
    pub hup: Hup,
    /// May be given more than once (each line, or UCI list item, adds).
    pub list: bool,
    /// Read one line of this key into the config.
    pub set: fn(&mut C, &RcLine<'_>, &str) -> Result<(), ConfigError>,
    pub field: Field<C>,
}

/// A daemon's keys.
pub struct Table<C: 'static> {
    pub keys: &'static [Key<C>],
    /// Other names accepted for a key (`addr_alloc` for `addr_pool`).
    pub aliases: &'static [(&'static str, &'static str)],
}

/// Options of a UCI section that belong to the init scripts
/// (`init.d/tmipd`, `init.d/mlrd`), never seen by the daemons, with their
/// defaults as the scripts read them (`config_get_bool enabled "$section"
/// enabled 1`).
pub const INIT_SCRIPT_KEYS: &[(&str, &str)] = &[("enabled", "1")];

/// What a HUP does with a newly read config.
#[derive(Debug)]
pub struct Reload<C> {
    /// The config to run with: the new one, but restart-only keys as they run.
    pub config: C,
    /// Live keys whose value changed (applied).
    pub applied: Vec<&'static str>,
    /// Restart-only keys whose value changed (not applied).
    pub restart: Vec<&'static str>,
}

impl<C: 'static> Table<C> {
    /// The key called `name` (or one of its aliases).
    pub fn get(&self, name: &str) -> Option<&'static Key<C>> {
        let name = self
            .aliases
            .iter()
            .find(|(a, _)| *a == name)
            .map_or(name, |(_, k)| *k);
        self.keys.iter().find(|k| k.name == name)
    }

    /// Fill `c` (a blank config) with every key's default.
    pub fn set_defaults(&self, c: &mut C, file: &str) -> Result<(), ConfigError> {
        for k in self.keys {
            if let Default::Value(v) = k.default {
                let l = RcLine {
                    line: 0,
                    key: k.name,
                    rest: v,
                };
                (k.set)(c, &l, file)
                    .map_err(|e| ConfigError::new(file, 0, format!("default of {e}")))?;
            }
        }
        Ok(())
    }

    /// Read `lines` into `c` (defaults already set): an unknown key, a key
    /// set twice (other than lists), a bad value or a missing required key
    /// is an error naming the file and line.
    pub fn read(&self, c: &mut C, file: &str, lines: &[RcLine<'_>]) -> Result<(), ConfigError> {
        let repeatable: Vec<&str> = self
            .keys
            .iter()
            .filter(|k| k.list)
            .map(|k| k.name)
            .chain(
                self.aliases
                    .iter()
                    .filter(|(_, k)| self.get(k).is_some_and(|k| k.list))
                    .map(|(a, _)| *a),
            )
            .collect();
        let mut once = OnceEach::new(&repeatable);
        let mut seen: Vec<&str> = Vec::new();
        for l in lines {
            let Some(k) = self.get(l.key) else {
                return Err(ConfigError::new(
                    file,
                    l.line,
                    format!("unknown key '{}'", l.key),
                ));
            };
            once.check(file, l)?;
            (k.set)(c, l, file)?;
            seen.push(k.name);
        }
        if let Some(k) = self
            .keys
            .iter()
            .find(|k| k.default == Default::Required && !seen.contains(&k.name))
        {
            return Err(ConfigError::new(
                file,
                0,
                format!("missing mandatory key '{}'", k.name),
            ));
        }
        Ok(())
    }

    /// A HUP read `new` while the daemon runs `running`: keep the running
    /// value of every restart-only key, and say which keys changed.
    pub fn reload(&self, running: &C, mut new: C) -> Reload<C> {
        let mut applied = Vec::new();
        let mut restart = Vec::new();
        for k in self.keys {
            let same = (k.field.same)(running, &new);
            match k.hup {
                Hup::Live if !same => applied.push(k.name),
                Hup::Live => {}
                Hup::Restart => {
                    // Always the running value (`same` may look past a
                    // difference that is no change, e.g. -F's foreground).
                    (k.field.keep)(&mut new, running);
                    if !same {
                        restart.push(k.name);
                    }
                }
            }
        }
        Reload {
            config: new,
            applied,
            restart,
        }
    }

    /// The keys as a Markdown table (key, value, default, HUP), for the docs.
    pub fn markdown(&self) -> String {
        let mut o = String::from("| key | value | default | on HUP |\n|---|---|---|---|\n");
        for k in self.keys {
            let mut name = format!("`{}`", k.name);
            for (a, _) in self.aliases.iter().filter(|(_, t)| *t == k.name) {
                let _ = write!(name, " (or `{a}`)");
            }
            let ty = if k.list {
                format!("{}, repeatable", k.ty)
            } else {
                k.ty.to_string()
            };
            let default = match k.default {
                Default::Value(v) => format!("`{v}`"),
                Default::Unset(why) => why.to_string(),
                Default::Required => "required".to_string(),
            };
            let hup = match k.hup {
                Hup::Live => "applied",
                Hup::Restart => "needs a restart",
            };
            let _ = writeln!(o, "| {name} | {ty} | {default} | {hup} |");
        }
        o
    }

    /// What LuCI's settings form takes from the table, as a JSON object:
    /// `defaults` (every key with one, and the init scripts' keys),
    /// `keys` (every key the form must offer: the init scripts' and the
    /// table's, not the aliases) and `datatypes` (LuCI's, for numbers and
    /// addresses).
    pub fn luci_json(&self) -> String {
        let defaults: Vec<String> = INIT_SCRIPT_KEYS
            .iter()
            .map(|(k, v)| format!("{}: {}", json_str(k), json_str(v)))
            .chain(self.keys.iter().filter_map(|k| match k.default {
                Default::Value(v) => Some(format!("{}: {}", json_str(k.name), json_str(v))),
                _ => None,
            }))
            .collect();
        let keys: Vec<String> = INIT_SCRIPT_KEYS
            .iter()
            .map(|(k, _)| json_str(k))
            .chain(self.keys.iter().map(|k| json_str(k.name)))
            .collect();
        let datatypes: Vec<String> = self
            .keys
            .iter()
            .filter_map(|k| {
                let t = match k.ty {
                    Type::Uint { min: 0, max, .. } if max >= u64::from(u32::MAX) => {
                        "uinteger".to_string()
                    }
                    Type::Uint { min, max, .. } if max >= u64::from(u32::MAX) => {
                        format!("min({min})")
                    }
                    Type::Uint { min, max, .. } => format!("range({min},{max})"),
                    Type::Ipv4 => "ip4addr".to_string(),
                    _ => return None,
                };
                Some(format!("{}: {}", json_str(k.name), json_str(&t)))
            })
            .collect();
        format!(
            "{{\n\t\t\"defaults\": {{{}}},\n\t\t\"keys\": [{}],\n\t\t\"datatypes\": {{{}}}\n\t}}",
            defaults.join(", "),
            keys.join(", "),
            datatypes.join(", ")
        )
    }
}

/// `s` as a JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// The text between the lines `begin` and `end` of `doc` replaced by
/// `body` (for generated parts of checked-in files); `None` when the
/// markers are missing.
pub fn replace_between(doc: &str, begin: &str, end: &str, body: &str) -> Option<String> {
    let b = doc.find(begin)? + begin.len();
    let b = b + doc[b..].find('\n')? + 1;
    let e = b + doc[b..].find(end)?;
    let e = doc[..e].rfind('\n').map_or(b, |n| n + 1).max(b);
    Some(format!("{}{}{}", &doc[..b], body, &doc[e..]))
}

/// Checks a daemon's table (called by each table's tests): names unique,
/// defaults parse, booleans default to `0`/`1`, integer ranges and choices
/// as the parser enforces them, and each key's `set` writes nothing but
/// what its `field` compares and keeps (else a HUP could apply half a
/// restart-only key). `samples` gives a valid value for keys whose type
/// and default do not make one.
pub fn check_table<C: PartialEq + std::fmt::Debug + 'static>(
    t: &Table<C>,
    blank: impl Fn() -> C,
    samples: &[(&str, &str)],
) -> Result<(), String> {
    let mut names: Vec<&str> = t.keys.iter().map(|k| k.name).collect();
    names.extend(t.aliases.iter().map(|(a, _)| *a));
    names.extend(INIT_SCRIPT_KEYS.iter().map(|(k, _)| *k));
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() != names.len() {
        return Err(format!("a name is there twice: {names:?}"));
    }
    let mut c = blank();
    t.set_defaults(&mut c, "table").map_err(|e| e.to_string())?;
    for k in t.keys {
        let try_set = |v: &str| {
            let mut c = blank();
            let l = RcLine {
                line: 1,
                key: k.name,
                rest: v,
            };
            (k.set)(&mut c, &l, "t").map(|_| c)
        };
        let mut values: Vec<String> = Vec::new();
        match k.ty {
            Type::Bool => {
                if let Default::Value(v) = k.default {
                    if v != "0" && v != "1" {
                        return Err(format!(
                            "{}: a boolean's default is 0 or 1, not {v}",
                            k.name
                        ));
                    }
                }
                values.extend(["0", "1", "on", "off"].map(String::from));
                if try_set("maybe").is_ok() {
                    return Err(format!("{}: takes 'maybe' as a boolean", k.name));
                }
            }
            Type::Uint { min, max, .. } => {
                values.extend([min.to_string(), max.to_string()]);
                if min > 0 && try_set(&(min - 1).to_string()).is_ok() {
                    return Err(format!("{}: takes {} (min is {min})", k.name, min - 1));
                }
                if try_set(&(u128::from(max) + 1).to_string()).is_ok() {
                    return Err(format!(
                        "{}: takes {} (max is {max})",
                        k.name,
                        u128::from(max) + 1
                    ));
                }
            }
            Type::Choice(words) => {
                values.extend(words.iter().map(|w| w.to_string()));
                if try_set("no-such-choice").is_ok() {
                    return Err(format!("{}: takes any word", k.name));
                }
            }
            _ => {}
        }
        if let Default::Value(v) = k.default {
            values.push(v.to_string());
        }
        values.extend(
            samples
                .iter()
                .filter(|(n, _)| *n == k.name)
                .map(|(_, v)| v.to_string()),
        );
        if values.is_empty() {
            return Err(format!("{}: no sample value to check it with", k.name));
        }
        for v in &values {
            let d = try_set(v).map_err(|e| format!("{}: {v}: {e}", k.name))?;
            let mut kept = blank();
            (k.field.keep)(&mut kept, &d);
            if kept != d || !(k.field.same)(&kept, &d) {
                return Err(format!(
                    "{}: set writes more than its field keeps:\n{d:?}\n{kept:?}",
                    k.name
                ));
            }
        }
    }
    Ok(())
}
