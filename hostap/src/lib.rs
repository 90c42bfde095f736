//! hostapd integration: station events from hostapd's control interface
//! (`AP-STA-CONNECTED`, `WDS-STA-INTERFACE-ADDED`, ...) and from its ubus
//! notifications, turned into one `StationEvent` type for tmipd.
