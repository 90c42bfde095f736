//! mlrd's configuration: the TMip 0.14a `mlrd.rc` keys (`network_name`,
//! `port`, `foreground`, `log_file`, `log`) plus this implementation's
//! (`status_file`, `debug_level`, `secret`, `state_dir`, `lease_time`,
//! `backup_mlr`, `max_connections`, `cn_timeout`, `max_unauth_per_source`,
//! `handshake_timeout`, `offer_time`, `foreign_share`). One typed struct,
//! validated once; an unknown key or bad value is an error naming the file
//! and line. The same lines can come from UCI (`Section::rc_lines()`).

use tmip::config::keys::{Table, Type};
use tmip::config::rc::RcLine;
use tmip::config::ConfigError;
use tmip::{
    bool_key, debug_level_key, network_name_key, opt_word_key, secret_key, uint_key, word_key,
};

/// Default UCI file for `-u`.
pub const UCI_FILE: &str = "/etc/config/tmip";
/// The UCI section type mlrd reads.
pub const UCI_TYPE: &str = "mlrd";

pub use tmip::config::Source;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MlrdConfig {
    pub network_name: String,
    pub port: u16,
    pub foreground: bool,
    pub log_file: String,
    pub log: bool,
    pub status_file: String,
    pub debug_level: u8,
    /// Shared network secret; `None` runs without authentication (warned).
    pub secret: Option<String>,
    pub state_dir: String,
    /// Seconds a binding lives without renewal.
    pub lease_time: u32,
    /// On the primary: the backup register it replicates to (HOST[:PORT]).
    pub backup_mlr: Option<String>,
    /// On the backup: the primary it replicates from (HOST[:PORT]).
    pub primary_mlr: Option<String>,
    /// Most MLRP connections at once; more are refused (logged).
    pub max_connections: usize,
    /// Seconds a bound CN may stay silent before it is marked down (CNs
    /// are told to ping every third of this); also how long a peer may
    /// leave replies unread before it is cut off.
    pub cn_timeout: u32,
    /// Most connections from one address that have not completed their
    /// handshake; a new one evicts that address's oldest.
    pub max_unauth_per_source: usize,
    /// Seconds a connection has to complete the MLRP handshake.
    pub handshake_timeout: u32,
    /// Seconds a DHCP offer holds its /30 for the station's REQUEST.
    pub offer_time: u32,
    /// Percent of a CN's pool other CNs may fill (the rest stays for its
    /// owner's stations).
    pub foreign_share: u8,
}

/// Every key mlrd reads: type, default, HUP behaviour and parser (see
/// `tmip::config::keys`).
pub static TABLE: Table<MlrdConfig> = Table {
    keys: &[
        network_name_key!(),
        uint_key!(port: u16, 1, u16::MAX, "", "6554", Restart),
        bool_key!(foreground, "0", Restart),
        word_key!(log_file, "/var/log/mlrd.log", Restart),
        bool_key!(log, "1", Restart),
        word_key!(status_file, "/tmp/mlrd.status", Live),
        debug_level_key!(Live),
        secret_key!(Live),
        word_key!(state_dir, "/var/lib/mlrd", Restart),
        uint_key!(lease_time: u32, 60, u32::MAX, "s", "86400", Live),
        opt_word_key!(backup_mlr, Type::Words("HOST[:PORT]"), Restart),
        opt_word_key!(primary_mlr, Type::Words("HOST[:PORT]"), Restart),
        uint_key!(max_connections: usize, 1, usize::MAX, "", "8192", Live),
        uint_key!(cn_timeout: u32, 3, u32::MAX, "s", "30", Live),
        uint_key!(max_unauth_per_source: usize, 1, usize::MAX, "", "16", Live),
        uint_key!(handshake_timeout: u32, 1, 300, "s", "10", Live),
        uint_key!(offer_time: u32, 5, 3600, "s", "60", Live),
        uint_key!(foreign_share: u8, 0, 100, "%", "75", Live),
    ],
    aliases: &[],
};

impl MlrdConfig {
    /// A config with nothing set (what [`TABLE`]'s defaults and the file's
    /// lines are written into).
    pub fn blank() -> MlrdConfig {
        MlrdConfig {
            network_name: String::new(),
            port: 0,
            foreground: false,
            log_file: String::new(),
            log: false,
            status_file: String::new(),
            debug_level: 0,
            secret: None,
            state_dir: String::new(),
            lease_time: 0,
            backup_mlr: None,
            primary_mlr: None,
            max_connections: 0,
            cn_timeout: 0,
            max_unauth_per_source: 0,
            handshake_timeout: 0,
            offer_time: 0,
            foreign_share: 0,
        }
    }

    /// Read and validate from either source.
    pub fn load_source(src: &Source) -> Result<MlrdConfig, ConfigError> {
        tmip::config::load_source(src, UCI_TYPE, Self::from_lines)
    }

    /// The options of UCI section `section` (type `mlrd`) of `text`.
    #[cfg(test)]
    pub fn from_uci(file: &str, text: &str, section: &str) -> Result<MlrdConfig, ConfigError> {
        tmip::config::from_uci(file, text, section, UCI_TYPE, Self::from_lines)
    }

    /// Build from already split lines (rc file or UCI section).
    pub fn from_lines(file: &str, lines: &[RcLine<'_>]) -> Result<MlrdConfig, ConfigError> {
        let mut c = MlrdConfig::blank();
        TABLE.set_defaults(&mut c, file)?;
        TABLE.read(&mut c, file, lines)?;
        if c.backup_mlr.is_some() && c.primary_mlr.is_some() {
            return Err(ConfigError::new(
                file,
                0,
                "backup_mlr (on the primary) and primary_mlr (on the backup) exclude each other",
            ));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<MlrdConfig, ConfigError> {
        let lines = tmip::config::rc::parse("mlrd.rc", text)?;
        MlrdConfig::from_lines("mlrd.rc", &lines)
    }

    #[test]
    fn reads_the_seed_quick_start_exactly() {
        let c = parse(
            "network_name my-tmip-mobility\nport 6554\nforeground false\nlog_file /var/log/mlrd.log\nlog true\n",
        )
        .unwrap();
        assert_eq!(c.network_name, "my-tmip-mobility");
        assert_eq!(c.port, 6554);
        assert!(!c.foreground);
        assert!(c.log);
        assert_eq!(c.secret, None);
    }

    #[test]
    fn reads_every_extra_key() {
        let c = parse(
            "network_name n\nstatus_file /tmp/s.json\ndebug_level 5\nsecret \"a b#c\"\nstate_dir /tmp/st\nlease_time 600\nbackup_mlr 10.0.0.2\nmax_connections 100\ncn_timeout 9\nmax_unauth_per_source 4\nhandshake_timeout 3\n",
        )
        .unwrap();
        assert_eq!(c.debug_level, 5);
        assert_eq!(c.secret.as_deref(), Some("a b#c"));
        assert_eq!(c.lease_time, 600);
        assert_eq!(c.max_connections, 100);
        assert_eq!(c.cn_timeout, 9);
        assert_eq!(c.max_unauth_per_source, 4);
        assert_eq!(c.handshake_timeout, 3);
        assert_eq!(c.backup_mlr.as_deref(), Some("10.0.0.2"));
    }

    #[test]
    fn reads_the_offer_and_quota_keys() {
        let c = parse("network_name n\n").unwrap();
        assert_eq!((c.offer_time, c.foreign_share), (60, 75));
        let c = parse("network_name n\noffer_time 30\nforeign_share 50\n").unwrap();
        assert_eq!((c.offer_time, c.foreign_share), (30, 50));
        for bad in [
            "offer_time 2",
            "offer_time x",
            "foreign_share 101",
            "foreign_share -1",
        ] {
            let e = parse(&format!("network_name n\n{bad}\n")).unwrap_err();
            assert!(e.to_string().contains("mlrd.rc:2"), "{bad}: {e}");
        }
    }

    #[test]
    fn unknown_keys_and_bad_values_name_file_and_line() {
        assert_eq!(
            parse("network_name n\n\nfrobnicate 1\n")
                .unwrap_err()
                .to_string(),
            "mlrd.rc:3: unknown key 'frobnicate'"
        );
        assert_eq!(
            parse("network_name n\ndebug_level 9\n")
                .unwrap_err()
                .to_string(),
            "mlrd.rc:2: debug_level: 9 is out of range 0..7"
        );
        assert!(parse("network_name n\nforeground maybe\n")
            .unwrap_err()
            .to_string()
            .starts_with("mlrd.rc:2: foreground: bad boolean"));
        assert!(parse("network_name n\nport 70000\n")
            .unwrap_err()
            .to_string()
            .starts_with("mlrd.rc:2: port: bad value '70000'"));
        assert_eq!(
            parse("port 1\n").unwrap_err().to_string(),
            "mlrd.rc: missing mandatory key 'network_name'"
        );
    }

    #[test]
    fn a_key_set_twice_is_an_error_naming_both_lines() {
        assert_eq!(
            parse("network_name n\nport 6554\n# again\nport 7000\n")
                .unwrap_err()
                .to_string(),
            "mlrd.rc:4: port: set twice (first on line 2)"
        );
        assert_eq!(
            parse("secret a\nnetwork_name n\nsecret b\n")
                .unwrap_err()
                .to_string(),
            "mlrd.rc:3: secret: set twice (first on line 1)"
        );
        // (UCI keeps libuci's rule instead: a repeated option replaces the
        // earlier one before mlrd sees the section.)
    }

    #[test]
    fn reads_a_uci_section_with_errors_at_the_option_line() {
        let text = "config tmipd 'main'\n\toption cn_if 'br-lan'\n\nconfig mlrd 'mlr'\n\toption enabled '0'\n\toption network_name 'my-tmip-mobility'\n\toption port '6554'\n\toption log '1'\n\toption state_dir '/etc/tmip/mlrd'\n";
        let c = MlrdConfig::from_uci("/etc/config/tmip", text, "mlr").unwrap();
        assert_eq!(c.network_name, "my-tmip-mobility");
        assert_eq!(c.state_dir, "/etc/tmip/mlrd");
        assert!(c.log);
        let c2 = MlrdConfig::from_uci("/etc/config/tmip", text, "@mlrd[0]").unwrap();
        assert_eq!(c, c2);
        assert_eq!(
            MlrdConfig::from_uci("/etc/config/tmip", text, "main")
                .unwrap_err()
                .to_string(),
            "/etc/config/tmip:1: section 'main' is of type 'tmipd', not 'mlrd'"
        );
        assert_eq!(
            MlrdConfig::from_uci("/etc/config/tmip", text, "nope")
                .unwrap_err()
                .to_string(),
            "/etc/config/tmip: no section 'nope'"
        );
        let bad = format!("{text}\toption frob 'x'\n");
        assert_eq!(
            MlrdConfig::from_uci("/etc/config/tmip", &bad, "mlr")
                .unwrap_err()
                .to_string(),
            "/etc/config/tmip:10: unknown key 'frob'"
        );
    }

    #[test]
    fn the_openwrt_default_mlrd_section_is_valid() {
        let text = include_str!("../../openwrt/tmipd/files/tmip.config");
        let c = MlrdConfig::from_uci("/etc/config/tmip", text, "@mlrd[0]").unwrap();
        assert_eq!(c.port, 6554);
    }

    #[test]
    fn the_shipped_mlrd_rc_is_valid() {
        let text = include_str!("../mlrd.rc");
        let c = parse(text).unwrap();
        assert_eq!(c.port, 6554);
        for k in TABLE.keys {
            assert!(text.contains(k.name), "mlrd.rc does not explain {}", k.name);
        }
    }

    #[test]
    fn the_key_table_holds_together() {
        let samples = [
            ("network_name", "n"),
            ("secret", "a b"),
            ("backup_mlr", "10.0.0.2:7000"),
            ("primary_mlr", "10.0.0.1"),
        ];
        tmip::config::keys::check_table(&TABLE, MlrdConfig::blank, &samples).unwrap();
        let c = parse("network_name n\n").unwrap();
        assert_eq!(c.port, tmip::MLR_PORT);
        assert_eq!(c.debug_level, tmip::logging::DEFAULT_LEVEL);
        assert_eq!(c.offer_time, crate::register::DEFAULT_OFFER_TIME);
        assert_eq!(c.foreign_share, crate::register::DEFAULT_FOREIGN_SHARE);
    }

    #[test]
    fn hup_keeps_restart_only_keys_and_names_them() {
        let a = parse("network_name n\nport 6554\n").unwrap();
        let b = parse("network_name m\nport 7000\nlease_time 600\noffer_time 30\n").unwrap();
        let r = TABLE.reload(&a, b);
        assert_eq!(r.restart, ["network_name", "port"]);
        assert_eq!(r.applied, ["lease_time", "offer_time"]);
        assert_eq!((r.config.network_name.as_str(), r.config.port), ("n", 6554));
        assert_eq!((r.config.lease_time, r.config.offer_time), (600, 30));
    }

    /// `tests/mlrd_process.rs` `hup_brings_every_live_key_to_the_part_that_uses_it`
    /// proves each of these reaches its user on a HUP; a key made live
    /// must get its case there, then be added here.
    #[test]
    fn live_keys_are_the_ones_this_test_proves() {
        let live: Vec<&str> = TABLE
            .keys
            .iter()
            .filter(|k| k.hup == tmip::config::keys::Hup::Live)
            .map(|k| k.name)
            .collect();
        assert_eq!(
            live,
            [
                "status_file",
                "debug_level",
                "secret",
                "lease_time",
                "max_connections",
                "cn_timeout",
                "max_unauth_per_source",
                "handshake_timeout",
                "offer_time",
                "foreign_share"
            ]
        );
    }

    /// Files that carry the key tables: LuCI's form (its defaults, keys and
    /// datatypes), the docs' key tables. `TMIP_REGEN=1 cargo test -p mlrd
    /// generated_parts` rewrites them; otherwise a file that differs from
    /// what the tables give fails here.
    #[test]
    fn generated_parts_of_luci_and_the_docs_match_the_tables() {
        use tmip::config::keys::replace_between;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let luci = format!(
            "var TMIP_KEYS = {{\n\t\"tmipd\": {},\n\t\"mlrd\": {}\n}};\n",
            tmip::config::tmipd::TABLE.luci_json(),
            TABLE.luci_json()
        );
        let parts = [
            (
                "openwrt/luci-app-tmip/htdocs/luci-static/resources/view/tmip/settings.js",
                "/* BEGIN generated from the key tables",
                "/* END generated */",
                luci,
            ),
            (
                "docs/TMIPD.md",
                "<!-- BEGIN generated from config::tmipd::TABLE",
                "<!-- END generated -->",
                tmip::config::tmipd::TABLE.markdown(),
            ),
            (
                "README.md",
                "<!-- BEGIN generated from mlrd::config::TABLE",
                "<!-- END generated -->",
                TABLE.markdown(),
            ),
        ];
        let regen = std::env::var_os("TMIP_REGEN").is_some();
        let mut stale = Vec::new();
        for (file, begin, end, body) in parts {
            let path = root.join(file);
            let now = std::fs::read_to_string(&path).unwrap();
            let want = replace_between(&now, begin, end, &body)
                .unwrap_or_else(|| panic!("{file}: markers {begin:?} .. {end:?} missing"));
            if want != now {
                if regen {
                    std::fs::write(&path, want).unwrap();
                } else {
                    stale.push(file);
                }
            }
        }
        assert!(
            stale.is_empty(),
            "not what the key tables give (TMIP_REGEN=1 cargo test -p mlrd generated_parts): {stale:?}"
        );
    }

    /// The init scripts read `enabled` with the default the table of
    /// init-script keys (and so LuCI) has.
    #[test]
    fn the_init_scripts_defaults_are_the_tables() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for script in ["init.d/tmipd", "init.d/mlrd"] {
            let text = std::fs::read_to_string(root.join(script)).unwrap();
            let gets: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| l.starts_with("config_get"))
                .collect();
            let want: Vec<String> = tmip::config::keys::INIT_SCRIPT_KEYS
                .iter()
                .map(|(k, v)| format!("config_get_bool {k} \"$section\" {k} {v}"))
                .collect();
            assert_eq!(gets, want, "{script}");
        }
    }
}
