//! hostapd's ubus notifications mapped onto [`StationEvent`].
//!
//! OpenWrt's hostapd publishes one ubus object per BSS, `hostapd.<ifname>`,
//! and notifies its subscribers (ubus.c in OpenWrt's hostapd package):
//!
//! | notification | fields we read | becomes |
//! |---|---|---|
//! | `sta-authorized` | `address`, `vlan`? | `Connected { vlan }` |
//! | `assoc` | `address` | `Connected { vlan: None }` (early hint: an association request hostapd is about to accept; the CN treats `Connected` idempotently) |
//! | `disassoc`, `deauth`, `local-deauth`, `inactive-deauth` | `address` | `Disconnected` |
//! | `probe`, `auth`, `key-mismatch`, anything else | — | ignored |
//!
//! `auth` comes before association (and for SAE several times), so it is not
//! an arrival. The caller (the ubus client in the core crate) flattens the
//! notification's blobmsg table into `(key, value)` strings, integers in
//! decimal, so this crate needs no blob code.

use crate::event::{parse_mac, Mac, StationEvent};
use core::fmt;

/// Why a notification was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UbusEventError {
    /// `method` arrived without an `address` field.
    MissingAddress(String),
    /// `method`: `address` is not a MAC address.
    BadAddress(String, String),
    /// `method`: the `vlan` field is not a VLAN id.
    BadVlan(String, String),
}

impl fmt::Display for UbusEventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UbusEventError::MissingAddress(m) => write!(f, "hostapd ubus {m}: no address"),
            UbusEventError::BadAddress(m, a) => {
                write!(f, "hostapd ubus {m}: bad address {a:?}")
            }
            UbusEventError::BadVlan(m, v) => write!(f, "hostapd ubus {m}: bad vlan {v:?}"),
        }
    }
}

impl std::error::Error for UbusEventError {}

enum Kind {
    Connected,
    Disconnected,
}

/// Map one hostapd notification (`method`, flattened `fields`) to an event;
/// `Ok(None)` for notifications that do not change where a station is.
pub fn from_ubus_notification<'a, I>(
    method: &str,
    fields: I,
) -> Result<Option<StationEvent>, UbusEventError>
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let kind = match method {
        "sta-authorized" | "assoc" => Kind::Connected,
        "disassoc" | "deauth" | "local-deauth" | "inactive-deauth" => Kind::Disconnected,
        _ => return Ok(None),
    };
    let mut address: Option<Mac> = None;
    let mut vlan: Option<u16> = None;
    for (k, v) in fields {
        match k {
            "address" => {
                address =
                    Some(parse_mac(v).ok_or_else(|| {
                        UbusEventError::BadAddress(method.to_string(), v.to_string())
                    })?)
            }
            "vlan" if method == "sta-authorized" => {
                let id: u16 = v
                    .parse()
                    .ok()
                    .filter(|_| v.bytes().all(|b| b.is_ascii_digit()))
                    .filter(|&n| n <= 4094)
                    .ok_or_else(|| UbusEventError::BadVlan(method.to_string(), v.to_string()))?;
                vlan = (id != 0).then_some(id);
            }
            _ => {}
        }
    }
    let mac = address.ok_or_else(|| UbusEventError::MissingAddress(method.to_string()))?;
    Ok(Some(match kind {
        Kind::Connected => StationEvent::Connected { mac, vlan },
        Kind::Disconnected => StationEvent::Disconnected { mac },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: Mac = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
    const A: &str = "02:11:22:33:44:55";

    #[test]
    fn authorized_with_vlan_is_connected() {
        let ev = from_ubus_notification(
            "sta-authorized",
            [
                ("address", A),
                ("auth-alg", "open"),
                ("vlan", "12"),
                ("ifname", "wlan0"),
            ],
        );
        assert_eq!(
            ev,
            Ok(Some(StationEvent::Connected {
                mac: M,
                vlan: Some(12)
            }))
        );
    }

    #[test]
    fn assoc_is_connected_without_vlan() {
        let ev = from_ubus_notification(
            "assoc",
            [
                ("address", A),
                ("target", "02:00:00:00:00:01"),
                ("signal", "-40"),
                ("freq", "2412"),
            ],
        );
        assert_eq!(ev, Ok(Some(StationEvent::Connected { mac: M, vlan: None })));
    }

    #[test]
    fn leaving_notifications_are_disconnected() {
        for m in ["disassoc", "deauth", "local-deauth", "inactive-deauth"] {
            assert_eq!(
                from_ubus_notification(m, [("address", A)]),
                Ok(Some(StationEvent::Disconnected { mac: M })),
                "{m}"
            );
        }
    }

    #[test]
    fn other_notifications_ignored_even_if_malformed() {
        for m in ["probe", "auth", "key-mismatch", "bss.new", ""] {
            assert_eq!(
                from_ubus_notification(m, [("address", "junk")]),
                Ok(None),
                "{m}"
            );
        }
    }

    #[test]
    fn bad_fields_are_errors() {
        assert!(matches!(
            from_ubus_notification("assoc", [("signal", "-40")]),
            Err(UbusEventError::MissingAddress(_))
        ));
        assert!(matches!(
            from_ubus_notification("deauth", [("address", "02:11:22:33:44")]),
            Err(UbusEventError::BadAddress(..))
        ));
        assert!(matches!(
            from_ubus_notification("sta-authorized", [("address", A), ("vlan", "-1")]),
            Err(UbusEventError::BadVlan(..))
        ));
    }
}
