//! OpenWrt UCI files (`/etc/config/tmip`), parsed exactly as uci/file.c does.
