#!/bin/sh
# Stand-in for OpenWrt's /lib/config/uci.sh uci_load: reset the state, then
# eval `uci -S -n export PACKAGE` (anonymous sections keep their cfgNNHHHH
# names). UCI_CONFIG_DIR points uci at the test's config directory.
# shellcheck disable=SC2034,SC3043

uci_load() {
	local PACKAGE="$1" DATA RET VAR
	for VAR in $CONFIG_LIST_STATE; do
		export "CONFIG_${VAR}="
		export "CONFIG_${VAR}_LENGTH="
	done
	export CONFIG_LIST_STATE=
	export CONFIG_SECTIONS=
	export CONFIG_NUM_SECTIONS=0
	export CONFIG_SECTION=
	DATA="$("$STANDIN_ROOT/sbin/uci" ${UCI_CONFIG_DIR:+-c "$UCI_CONFIG_DIR"} -S -n export "$PACKAGE" 2>/dev/null)"
	RET="$?"
	[ "$RET" != 0 ] || [ -z "$DATA" ] || eval "$DATA"
	unset DATA
	return "$RET"
}
