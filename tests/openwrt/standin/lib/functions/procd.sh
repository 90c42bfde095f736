#!/bin/sh
# Recording stand-in for OpenWrt's /lib/functions/procd.sh: every call the
# init script makes is appended to $PROCD_LOG, one line per call, each
# argument in [brackets] so the exact argv is visible. procd_close_service
# collects the triggers as the real one does (service_triggers between
# procd_open_trigger and procd_close_trigger).

_procd_rec() {
	_line="$1"
	shift
	for _a in "$@"; do
		_line="$_line [$_a]"
	done
	echo "$_line" >>"$PROCD_LOG"
}

procd_open_service() { _procd_rec open_service "$@"; }
procd_close_service() {
	procd_open_trigger
	service_triggers
	procd_close_trigger
	_procd_rec close_service "$@"
}
procd_open_instance() { _procd_rec open_instance "$@"; }
procd_close_instance() { _procd_rec close_instance "$@"; }
procd_set_param() { _procd_rec set_param "$@"; }
procd_append_param() { _procd_rec append_param "$@"; }
procd_open_trigger() { _procd_rec open_trigger; }
procd_close_trigger() { _procd_rec close_trigger; }
procd_add_reload_trigger() { _procd_rec add_reload_trigger "$@"; }
procd_add_interface_trigger() { _procd_rec add_interface_trigger "$@"; }
procd_kill() { _procd_rec kill "$@"; }
