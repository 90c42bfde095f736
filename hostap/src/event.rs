//! hostapd control-interface event lines and the station events tmipd acts on.
//!
//! hostapd sends every attached monitor one datagram per event, shaped
//! `<LEVEL>NAME args...` (`<3>` is MSG_INFO). The global control interface
//! prefixes `IFNAME=<dev> `. We understand four events (hostapd
//! src/ap/sta_info.c `ap_sta_set_authorized`, src/ap/drv_callbacks.c):
//!
//! ```text
//! <3>AP-STA-CONNECTED 02:11:22:33:44:55[ keyid=..][ vlanid=N][ auth_alg=..]
//! <3>AP-STA-DISCONNECTED 02:11:22:33:44:55
//! <3>WDS-STA-INTERFACE-ADDED ifname=wlan0.sta1 sta_addr=02:11:22:33:44:55
//! <3>WDS-STA-INTERFACE-REMOVED ifname=wlan0.sta1 sta_addr=02:11:22:33:44:55
//! ```
//!
//! Any other event is `Ok(None)`; a known event with a bad argument is an
//! `Err` (never a panic): it came from outside the process.

use core::fmt;

/// An IEEE 802 MAC address as six bytes (the core crate wraps it in `MacAddr`).
pub type Mac = [u8; 6];

/// Longest interface name Linux accepts (IFNAMSIZ - 1).
const IFNAME_MAX: usize = 15;

/// What hostapd told us about a station.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StationEvent {
    /// The station is associated and authorized (may pass traffic).
    /// `vlan` is hostapd's dynamic VLAN id when one was assigned.
    Connected { mac: Mac, vlan: Option<u16> },
    /// The station left (disassociated, deauthenticated, logged off).
    Disconnected { mac: Mac },
    /// A 4-address (WDS) station got its own AP_VLAN netdev `ifname`.
    WdsAdded { ifname: String, mac: Mac },
    /// That netdev was removed.
    WdsRemoved { ifname: String, mac: Mac },
}

impl StationEvent {
    /// The station's MAC address, whatever the event.
    pub fn mac(&self) -> Mac {
        match self {
            StationEvent::Connected { mac, .. }
            | StationEvent::Disconnected { mac }
            | StationEvent::WdsAdded { mac, .. }
            | StationEvent::WdsRemoved { mac, .. } => *mac,
        }
    }
}

impl fmt::Display for StationEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StationEvent::Connected { mac, vlan: None } => {
                write!(f, "station {} connected", format_mac(mac))
            }
            StationEvent::Connected { mac, vlan: Some(v) } => {
                write!(f, "station {} connected (vlan {v})", format_mac(mac))
            }
            StationEvent::Disconnected { mac } => {
                write!(f, "station {} disconnected", format_mac(mac))
            }
            StationEvent::WdsAdded { ifname, mac } => {
                write!(f, "WDS station {} on {ifname}", format_mac(mac))
            }
            StationEvent::WdsRemoved { ifname, mac } => {
                write!(f, "WDS station {} left {ifname}", format_mac(mac))
            }
        }
    }
}

/// Why an event line was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventError {
    /// `event` lacks its station address.
    MissingMac(&'static str),
    /// `event`: the text is not a MAC address `aa:bb:cc:dd:ee:ff`.
    BadMac(&'static str, String),
    /// `event`: a `key=value` argument has a bad value.
    BadArgument(&'static str, String),
    /// `event` lacks a required `key=` argument.
    MissingArgument(&'static str, &'static str),
    /// The datagram is not UTF-8 text.
    NotText,
}

impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventError::MissingMac(ev) => write!(f, "hostapd {ev}: no station address"),
            EventError::BadMac(ev, s) => write!(f, "hostapd {ev}: bad station address {s:?}"),
            EventError::BadArgument(ev, s) => write!(f, "hostapd {ev}: bad argument {s:?}"),
            EventError::MissingArgument(ev, k) => write!(f, "hostapd {ev}: missing {k}="),
            EventError::NotText => write!(f, "hostapd event is not text"),
        }
    }
}

impl std::error::Error for EventError {}

/// Parse `aa:bb:cc:dd:ee:ff` (case-insensitive, exactly six 2-digit groups).
pub fn parse_mac(s: &str) -> Option<Mac> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in mac.iter_mut() {
        let p = parts.next()?;
        // from_str_radix alone would accept "+5".
        if p.len() != 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// `aa:bb:cc:dd:ee:ff`, lower case, as hostapd prints it.
pub fn format_mac(m: &Mac) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// Strip the optional `IFNAME=<dev> ` prefix (global control interface) and
/// the `<N>` level prefix; trailing newlines/NULs are dropped too.
fn strip_prefixes(line: &str) -> &str {
    let mut s = line.trim_end_matches(['\n', '\r', '\0']);
    if let Some(rest) = s.strip_prefix("IFNAME=") {
        s = rest.split_once(' ').map_or("", |(_, r)| r);
    }
    if let Some(rest) = s.strip_prefix('<') {
        if let Some((lvl, r)) = rest.split_once('>') {
            if !lvl.is_empty() && lvl.bytes().all(|b| b.is_ascii_digit()) {
                s = r;
            }
        }
    }
    s
}

/// A raw datagram from hostapd: see [`parse_event`].
pub fn parse_event_bytes(msg: &[u8]) -> Result<Option<StationEvent>, EventError> {
    let line = core::str::from_utf8(msg).map_err(|_| EventError::NotText)?;
    parse_event(line)
}

/// Parse one event line; `Ok(None)` for events tmipd does not act on.
pub fn parse_event(line: &str) -> Result<Option<StationEvent>, EventError> {
    let s = strip_prefixes(line);
    let mut words = s.split_ascii_whitespace();
    let Some(name) = words.next() else {
        return Ok(None);
    };
    match name {
        "AP-STA-CONNECTED" => {
            const EV: &str = "AP-STA-CONNECTED";
            let mac = station_mac(EV, words.next())?;
            let mut vlan = None;
            for arg in words {
                // keyid=, auth_alg= (OpenWrt), p2p_dev_addr=, ... are not ours.
                if let Some(v) = arg.strip_prefix("vlanid=") {
                    let id: u16 = v
                        .parse()
                        .ok()
                        .filter(|_| v.bytes().all(|b| b.is_ascii_digit()))
                        .filter(|&n| n <= 4094)
                        .ok_or_else(|| EventError::BadArgument(EV, arg.to_string()))?;
                    // vlanid=0 means "no VLAN" in hostapd.
                    vlan = (id != 0).then_some(id);
                }
            }
            Ok(Some(StationEvent::Connected { mac, vlan }))
        }
        "AP-STA-DISCONNECTED" => {
            let mac = station_mac("AP-STA-DISCONNECTED", words.next())?;
            Ok(Some(StationEvent::Disconnected { mac }))
        }
        "WDS-STA-INTERFACE-ADDED" => {
            let (ifname, mac) = wds_args("WDS-STA-INTERFACE-ADDED", words)?;
            Ok(Some(StationEvent::WdsAdded { ifname, mac }))
        }
        "WDS-STA-INTERFACE-REMOVED" => {
            let (ifname, mac) = wds_args("WDS-STA-INTERFACE-REMOVED", words)?;
            Ok(Some(StationEvent::WdsRemoved { ifname, mac }))
        }
        _ => Ok(None),
    }
}

fn station_mac(ev: &'static str, word: Option<&str>) -> Result<Mac, EventError> {
    let w = word.ok_or(EventError::MissingMac(ev))?;
    parse_mac(w).ok_or_else(|| EventError::BadMac(ev, w.to_string()))
}

/// A Linux interface name: 1..=15 bytes, no '/', whitespace or NUL.
pub(crate) fn valid_ifname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= IFNAME_MAX
        && s != "."
        && s != ".."
        && s.bytes().all(|b| b.is_ascii_graphic() && b != b'/')
}

fn wds_args<'a>(
    ev: &'static str,
    words: impl Iterator<Item = &'a str>,
) -> Result<(String, Mac), EventError> {
    let mut ifname = None;
    let mut mac = None;
    for arg in words {
        if let Some(v) = arg.strip_prefix("ifname=") {
            if !valid_ifname(v) {
                return Err(EventError::BadArgument(ev, arg.to_string()));
            }
            ifname = Some(v.to_string());
        } else if let Some(v) = arg.strip_prefix("sta_addr=") {
            mac = Some(parse_mac(v).ok_or_else(|| EventError::BadMac(ev, v.to_string()))?);
        }
    }
    let ifname = ifname.ok_or(EventError::MissingArgument(ev, "ifname"))?;
    let mac = mac.ok_or(EventError::MissingArgument(ev, "sta_addr"))?;
    Ok((ifname, mac))
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: Mac = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];

    #[test]
    fn connected_plain_and_with_openwrt_arguments() {
        assert_eq!(
            parse_event("<3>AP-STA-CONNECTED 02:11:22:33:44:55"),
            Ok(Some(StationEvent::Connected { mac: M, vlan: None }))
        );
        assert_eq!(
            parse_event(
                "<3>AP-STA-CONNECTED 02:11:22:33:44:55 keyid=home vlanid=42 auth_alg=sae\n"
            ),
            Ok(Some(StationEvent::Connected {
                mac: M,
                vlan: Some(42)
            }))
        );
        assert_eq!(
            parse_event("IFNAME=wlan0 <3>AP-STA-CONNECTED 02:11:22:33:44:55 vlanid=0"),
            Ok(Some(StationEvent::Connected { mac: M, vlan: None }))
        );
    }

    #[test]
    fn uppercase_mac_accepted() {
        assert_eq!(
            parse_event("<3>AP-STA-DISCONNECTED 02:11:22:33:44:5F"),
            Ok(Some(StationEvent::Disconnected {
                mac: [0x02, 0x11, 0x22, 0x33, 0x44, 0x5f]
            }))
        );
    }

    #[test]
    fn wds_added_and_removed_in_either_order() {
        assert_eq!(
            parse_event("<3>WDS-STA-INTERFACE-ADDED ifname=wlan0.sta1 sta_addr=02:11:22:33:44:55"),
            Ok(Some(StationEvent::WdsAdded {
                ifname: "wlan0.sta1".into(),
                mac: M
            }))
        );
        assert_eq!(
            parse_event(
                "<3>WDS-STA-INTERFACE-REMOVED sta_addr=02:11:22:33:44:55 ifname=wlan0.sta1"
            ),
            Ok(Some(StationEvent::WdsRemoved {
                ifname: "wlan0.sta1".into(),
                mac: M
            }))
        );
    }

    #[test]
    fn unknown_events_ignored() {
        for l in [
            "",
            "<3>",
            "<3>CTRL-EVENT-EAP-STARTED 02:11:22:33:44:55",
            "<2>AP-ENABLED ",
            "OK\n",
            "PONG\n",
            "<3>AP-STA-CONNECTEDX 02:11:22:33:44:55",
        ] {
            assert_eq!(parse_event(l), Ok(None), "{l:?}");
        }
    }

    #[test]
    fn malformed_known_events_are_errors() {
        let bad = [
            "<3>AP-STA-CONNECTED",
            "<3>AP-STA-CONNECTED 02:11:22:33:44",
            "<3>AP-STA-CONNECTED 02:11:22:33:44:55:66",
            "<3>AP-STA-CONNECTED 02:11:22:33:44:5",
            "<3>AP-STA-CONNECTED 02:11:22:33:44:zz",
            "<3>AP-STA-CONNECTED 02:11:22:33:44:+5",
            "<3>AP-STA-CONNECTED 02:11:22:33:44:55 vlanid=x",
            "<3>AP-STA-CONNECTED 02:11:22:33:44:55 vlanid=70000",
            "<3>AP-STA-DISCONNECTED",
            "<3>WDS-STA-INTERFACE-ADDED ifname=wlan0.sta1",
            "<3>WDS-STA-INTERFACE-ADDED sta_addr=02:11:22:33:44:55",
            "<3>WDS-STA-INTERFACE-ADDED ifname= sta_addr=02:11:22:33:44:55",
            "<3>WDS-STA-INTERFACE-ADDED ifname=../../etc sta_addr=02:11:22:33:44:55",
            "<3>WDS-STA-INTERFACE-ADDED ifname=averyveryverylongname sta_addr=02:11:22:33:44:55",
            "<3>WDS-STA-INTERFACE-REMOVED ifname=w sta_addr=nope",
        ];
        for l in bad {
            assert!(parse_event(l).is_err(), "{l:?} should be an error");
        }
        assert_eq!(parse_event_bytes(&[0xff, 0xfe]), Err(EventError::NotText));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic fuzz: every prefix and byte flip of real lines.
        let lines: [&[u8]; 3] = [
            b"<3>AP-STA-CONNECTED 02:11:22:33:44:55 keyid=x vlanid=7 auth_alg=open",
            b"<3>WDS-STA-INTERFACE-ADDED ifname=wlan0.sta1 sta_addr=02:11:22:33:44:55",
            b"IFNAME=wlan0 <3>AP-STA-DISCONNECTED 02:11:22:33:44:55",
        ];
        for l in lines {
            for n in 0..=l.len() {
                let _ = parse_event_bytes(&l[..n]);
            }
            for i in 0..l.len() {
                for x in [0u8, b' ', b'=', b':', b'<', 0x80, 0xff] {
                    let mut v = l.to_vec();
                    v[i] = x;
                    let _ = parse_event_bytes(&v);
                }
            }
        }
    }

    #[test]
    fn mac_round_trip() {
        assert_eq!(format_mac(&M), "02:11:22:33:44:55");
        assert_eq!(parse_mac(&format_mac(&M)), Some(M));
    }
}
