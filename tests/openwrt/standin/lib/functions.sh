#!/bin/sh
# Stand-in for OpenWrt's /lib/functions.sh: the UCI state functions as
# base-files defines them (same variables: CONFIG_SECTIONS,
# CONFIG_<section>_<option>, CONFIG_<section>_TYPE, list items joined by
# spaces), loading through /lib/config/uci.sh's uci_load, i.e. by eval of
# `uci -S -n export <package>`.
# shellcheck disable=SC1091,SC2034,SC3043

append() {
	local var="$1" value="$2" sep="${3:- }"
	eval "export -- \"$var=\${$var:+\${$var}\${value:+\$sep}}\$value\""
}

config_set() {
	export "CONFIG_${1}_${2}=${3}"
}

config() {
	local cfgtype="$1" name="$2"
	export CONFIG_NUM_SECTIONS=$((CONFIG_NUM_SECTIONS + 1))
	name="${name:-cfg$CONFIG_NUM_SECTIONS}"
	append CONFIG_SECTIONS "$name"
	export CONFIG_SECTION="$name"
	config_set "$CONFIG_SECTION" TYPE "$cfgtype"
}

option() {
	local varname="$1"
	shift
	config_set "$CONFIG_SECTION" "$varname" "$*"
}

list() {
	local varname="$1" len
	shift
	config_get len "$CONFIG_SECTION" "${varname}_LENGTH" 0
	[ "$len" = 0 ] && append CONFIG_LIST_STATE "${CONFIG_SECTION}_${varname}"
	len=$((len + 1))
	config_set "$CONFIG_SECTION" "${varname}_ITEM$len" "$*"
	config_set "$CONFIG_SECTION" "${varname}_LENGTH" "$len"
	append "CONFIG_${CONFIG_SECTION}_${varname}" "$*" " "
}

# config_get VAR SECTION OPTION [DEFAULT] | config_get SECTION OPTION
config_get() {
	case "$2${3:-$1}" in
		*[!A-Za-z0-9_]*) : ;;
		*)
			case "$3" in
				"") eval echo "\"\${CONFIG_${1}_${2}:-\${4}}\"" ;;
				*) eval export -- "${1}=\${CONFIG_${2}_${3}:-\${4}}" ;;
			esac
			;;
	esac
}

config_get_bool() {
	local _tmp
	config_get _tmp "$2" "$3" "$4"
	case "$_tmp" in
		1|on|true|yes|enabled) _tmp=1 ;;
		0|off|false|no|disabled) _tmp=0 ;;
		*) _tmp="$4" ;;
	esac
	export "$1=$_tmp"
}

config_foreach() {
	local ___function="$1"
	[ "$#" -ge 1 ] && shift
	local ___type="$1"
	[ "$#" -ge 1 ] && shift
	local section cfgtype
	[ -z "$CONFIG_SECTIONS" ] && return 0
	for section in ${CONFIG_SECTIONS}; do
		config_get cfgtype "$section" TYPE
		[ -n "$___type" ] && [ "x$cfgtype" != "x$___type" ] && continue
		eval "$___function \"\$section\" \"\$@\""
	done
}

config_list_foreach() {
	local section="$1" option="$2" function="$3" len val c
	shift 3
	config_get len "$section" "${option}_LENGTH"
	[ -z "$len" ] && return 0
	c=1
	while [ "$c" -le "$len" ]; do
		config_get val "$section" "${option}_ITEM$c"
		eval "$function \"\$val\" \"\$@\""
		c=$((c + 1))
	done
}

# `package NAME` lines of the export are ignored, as in base-files.
package() { return 0; }

config_load() {
	uci_load "$@"
}

. "$STANDIN_ROOT/lib/config/uci.sh"
