'use strict';
'require view';
'require form';

/* /etc/config/tmip: the tmipd sections (one per CN instance) and the mlrd
 * section. Save & Apply commits through rpcd, which emits config.change:
 * procd's reload trigger then HUPs the daemons whose section changed.
 *
 * Defaults: an option the section does not set means the daemon's (or
 * init script's) default, taken from the daemons' key tables below. So
 * the form never writes a default: Values show it as a placeholder (an
 * empty field is removed, i.e. stays unset), and Flags carry the same
 * default. A Save writes only what was changed on the page: saving an
 * untouched form leaves UCI as it was (tests/luci_views.rs). */

/* BEGIN generated from the key tables (src/config/tmipd.rs, mlrd/src/config.rs, init.d): TMIP_REGEN=1 cargo test -p mlrd generated_parts */
var TMIP_KEYS = {
	"tmipd": {
		"defaults": {"enabled": "1", "tunnel_prefix": "tmip", "tunnel_backend": "auto", "log_file": "/var/log/tmipd.log", "log": "1", "foreground": "0", "debug_level": "2", "status_file": "/var/run/tmipd.status", "dhcp": "1", "lease_time": "3600", "reverse_tunnel": "1", "shared_link": "auto", "source_guard": "1", "cn_port": "5554", "max_stations": "256", "max_peers": "32", "new_station_rate": "10", "hostapd_ctrl": "auto", "ubus": "auto"},
		"keys": ["enabled", "mlr", "backup_mlr", "mlr_heartbeat", "mlr_deadline", "cn_name", "tunnel_prefix", "tunnel_backend", "cn_if", "mobile_if", "network_name", "addr_pool", "log_file", "log", "foreground", "debug_level", "status_file", "secret", "dhcp", "dns", "domain", "static_route", "lease_time", "reverse_tunnel", "shared_link", "source_guard", "cn_port", "listen_addr", "max_stations", "max_peers", "new_station_rate", "pid_file", "hostapd_ctrl", "ubus", "ubus_object"],
		"datatypes": {"mlr_heartbeat": "range(20,60000)", "mlr_deadline": "range(50,600000)", "debug_level": "range(0,7)", "lease_time": "min(10)", "cn_port": "range(1,65535)", "listen_addr": "ip4addr", "max_stations": "range(1,1024)", "max_peers": "range(1,64)", "new_station_rate": "uinteger"}
	},
	"mlrd": {
		"defaults": {"enabled": "1", "port": "6554", "foreground": "0", "log_file": "/var/log/mlrd.log", "log": "1", "status_file": "/tmp/mlrd.status", "debug_level": "2", "state_dir": "/var/lib/mlrd", "lease_time": "86400", "max_connections": "8192", "cn_timeout": "30", "max_unauth_per_source": "16", "handshake_timeout": "10", "offer_time": "60", "foreign_share": "75"},
		"keys": ["enabled", "network_name", "port", "foreground", "log_file", "log", "status_file", "debug_level", "secret", "state_dir", "lease_time", "backup_mlr", "primary_mlr", "max_connections", "cn_timeout", "max_unauth_per_source", "handshake_timeout", "offer_time", "foreign_share"],
		"datatypes": {"port": "range(1,65535)", "debug_level": "range(0,7)", "lease_time": "min(60)", "max_connections": "min(1)", "cn_timeout": "min(3)", "max_unauth_per_source": "min(1)", "handshake_timeout": "range(1,300)", "offer_time": "range(5,3600)", "foreign_share": "range(0,100)"}
	}
};
/* END generated */

var BOOL_TRUE = /^(1|on|true|yes|enabled)$/i, BOOL_FALSE = /^(0|off|false|no|disabled)$/i;

/* A flag as the daemons and init scripts read it: unset is its default,
 * and 'on', 'yes', 'true'... count as '1'. A Save writes nothing for a
 * flag left as shown (LuCI alone would remove an explicit '1' equal to
 * the default, and uncheck a 'yes'). */
function flag(s, name, title, defs, descr) {
	var o = s.option(form.Flag, name, title, descr);
	var cfgvalue = o.cfgvalue, write = o.write, remove = o.remove;
	o.default = defs.defaults[name];
	o.rmempty = true;
	o.cfgvalue = function(section_id) {
		var v = cfgvalue.apply(this, arguments);
		return (v == null) ? v : BOOL_TRUE.test(v) ? '1' : BOOL_FALSE.test(v) ? '0' : v;
	};
	o.write = function(section_id, v) {
		if (v !== this.cfgvalue(section_id))
			return write.apply(this, arguments);
	};
	o.remove = function(section_id) {
		var cv = this.cfgvalue(section_id);
		if (cv != null && cv !== this.default)
			return remove.apply(this, arguments);
	};
	return o;
}

function value(s, name, title, defs, datatype, descr) {
	var o = s.option(form.Value, name, title, descr);
	if (defs.defaults[name] != null)
		o.placeholder = defs.defaults[name];
	if (defs.datatypes[name] || datatype)
		o.datatype = defs.datatypes[name] || datatype;
	o.rmempty = true;
	return o;
}

/* IFACE FIRST LAST, FIRST/LAST an address or "*" (the subnet edge). */
function validatePool(section_id, v) {
	if (v == null || v === '')
		return true;
	var f = String(v).trim().split(/\s+/);
	var ip4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;
	if (f.length != 3 || !/^[A-Za-z0-9_.-]{1,15}$/.test(f[0]))
		return _('Expecting: IFACE FIRST LAST');
	for (var i = 1; i < 3; i++)
		if (f[i] !== '*' && !ip4.test(f[i]))
			return _('Expecting an IPv4 address or "*"');
	return true;
}

/* NET/LEN GATEWAY */
function validateRoute(section_id, v) {
	if (v == null || v === '')
		return true;
	var f = String(v).trim().split(/\s+/);
	var ip4 = /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/;
	var net = f[0] ? f[0].split('/') : [];
	if (f.length != 2 || net.length != 2 || !ip4.test(net[0]) || !/^([0-9]|[12]\d|3[0-2])$/.test(net[1]) || !ip4.test(f[1]))
		return _('Expecting: NET/LEN GATEWAY');
	return true;
}

/* A socket path, "auto" or "off". */
function validateSocket(section_id, v) {
	if (v == null || v === '' || v === 'auto' || v === 'off' || /^\/\S+$/.test(v))
		return true;
	return _('Expecting a socket path, "auto" or "off"');
}

return view.extend({
	render: function() {
		var m, s, o, D = TMIP_KEYS.tmipd, M = TMIP_KEYS.mlrd;

		m = new form.Map('tmip', _('TMip mobility'),
			_('Correspondent nodes (tmipd) hand out /30 cells to Wi-Fi stations and keep them reachable across access points; the mobile location register (mlrd) tracks where each station is. Empty fields mean the daemon\'s default (shown greyed).'));

		s = m.section(form.TypedSection, 'tmipd', _('Correspondent nodes'));
		s.addremove = true;
		s.anonymous = false;

		flag(s, 'enabled', _('Enabled'), D);
		value(s, 'mlr', _('MLR'), D, 'or(hostport,host)', _('host[:port], port 6554 by default'));
		value(s, 'backup_mlr', _('Backup MLR'), D, 'or(hostport,host)', _('The primary/backup pair\'s other register'));
		value(s, 'mlr_heartbeat', _('MLR heartbeat (ms)'), D, 'uinteger', _('Default: what the MLR asks for (faster with a backup MLR)'));
		value(s, 'mlr_deadline', _('MLR deadline (ms)'), D, 'uinteger', _('Silence after which the MLR link is dropped'));
		value(s, 'cn_name', _('CN name'), D);
		value(s, 'network_name', _('Network name'), D);
		value(s, 'tunnel_prefix', _('Tunnel prefix'), D, 'maxlength(10)', _('Unique per instance on this node'));
		value(s, 'cn_if', _('CN interface'), D, 'network');
		value(s, 'mobile_if', _('Mobile interface'), D, 'network');
		o = s.option(form.DynamicList, 'addr_pool', _('Address pools'), _('IFACE FIRST LAST, "*" for the subnet edge'));
		o.placeholder = 'wlan0 * *';
		o.validate = validatePool;
		flag(s, 'dhcp', _('DHCP server'), D);
		o = s.option(form.DynamicList, 'dns', _('DNS servers'));
		o.datatype = 'ip4addr';
		value(s, 'domain', _('Domain'), D, 'hostname');
		o = s.option(form.DynamicList, 'static_route', _('Static routes'), _('NET/LEN GATEWAY'));
		o.validate = validateRoute;
		value(s, 'lease_time', _('Lease time (s)'), D, 'uinteger');
		flag(s, 'reverse_tunnel', _('Reverse tunnel'), D);
		o = value(s, 'tunnel_backend', _('Tunnel backend'), D, null, _('auto: kernel IPIP where kmod-ipip is installed, else userspace (TUN)'));
		o.value('auto');
		o.value('kernel');
		o.value('userspace');
		o = value(s, 'shared_link', _('Shared mobile link'), D, null, _('Other hosts on the mobile interface: "auto" (when it is the CN interface or a bridge), "on" or "off"'));
		o.value('auto');
		o.value('on');
		o.value('off');
		o.validate = function(section_id, v) {
			return (v == null || v === '' || v === 'auto' || v === 'on' || v === 'off') ? true : _('Expecting "auto", "on" or "off"');
		};
		flag(s, 'source_guard', _('Source guard'), D, _('Forward a packet from the mobile interface only when its source MAC and IP are those of a station served here'));
		value(s, 'debug_level', _('Debug level'), D, 'range(0,7)', _('0 (silent) to 7'));
		o = value(s, 'secret', _('Secret'), D);
		o.password = true;
		value(s, 'cn_port', _('CN-to-CN port'), D, 'port');
		value(s, 'listen_addr', _('CN-to-CN listen address'), D, 'ip4addr', _('Default: the CN interface\'s address'));
		value(s, 'max_stations', _('Max. stations'), D, 'range(1,4096)');
		value(s, 'max_peers', _('Max. peer CNs'), D, 'range(1,64)');
		value(s, 'new_station_rate', _('New stations per second'), D, 'uinteger', _('New station MACs this cell may bring in per second (burst: four seconds\' worth); 0 = no limit'));
		o = value(s, 'hostapd_ctrl', _('hostapd control socket'), D, null, _('Station events from hostapd: a socket path, "auto" (/var/run/hostapd/&lt;mobile interface&gt;) or "off"'));
		o.value('auto');
		o.value('off');
		o.validate = validateSocket;
		o = value(s, 'ubus', _('ubus socket'), D, null, _('A socket path, "auto" (/var/run/ubus/ubus.sock) or "off"'));
		o.value('auto');
		o.value('off');
		o.validate = validateSocket;
		o = value(s, 'ubus_object', _('ubus object'), D, null, _('Default "tmip" for the section "main", "tmip.&lt;section&gt;" for others'));
		o.placeholder = 'tmip';
		flag(s, 'log', _('Log'), D);
		value(s, 'log_file', _('Log file'), D, 'string');
		value(s, 'status_file', _('Status file'), D, 'string');
		value(s, 'pid_file', _('PID file'), D, 'string');
		flag(s, 'foreground', _('Foreground'), D, _('procd runs the daemon with -F anyway'));

		s = m.section(form.TypedSection, 'mlrd', _('Mobile location register'));
		s.addremove = true;
		s.anonymous = false;

		flag(s, 'enabled', _('Enabled'), M);
		value(s, 'network_name', _('Network name'), M);
		value(s, 'port', _('Port'), M, 'port');
		value(s, 'state_dir', _('State directory'), M, 'string');
		value(s, 'lease_time', _('Lease time (s)'), M, 'uinteger');
		value(s, 'backup_mlr', _('Backup MLR'), M, 'or(hostport,host)');
		value(s, 'primary_mlr', _('Primary MLR'), M, 'or(hostport,host)', _('Set on the backup register of a pair'));
		o = value(s, 'secret', _('Secret'), M);
		o.password = true;
		value(s, 'max_connections', _('Max. connections'), M, 'uinteger');
		value(s, 'cn_timeout', _('CN timeout (s)'), M, 'uinteger');
		value(s, 'max_unauth_per_source', _('Max. unauthenticated per source'), M, 'uinteger');
		value(s, 'handshake_timeout', _('Handshake timeout (s)'), M, 'uinteger');
		value(s, 'offer_time', _('Offer hold (s)'), M, 'uinteger', _('How long a DHCP offer holds its /30 for the station\'s request'));
		value(s, 'foreign_share', _('Foreign share (%)'), M, 'range(0,100)', _('Percent of a CN\'s pool other CNs may fill'));
		value(s, 'debug_level', _('Debug level'), M, 'range(0,7)');
		flag(s, 'log', _('Log'), M);
		value(s, 'log_file', _('Log file'), M, 'string');
		value(s, 'status_file', _('Status file'), M, 'string');
		flag(s, 'foreground', _('Foreground'), M, _('procd runs the daemon with -F anyway'));

		return m.render();
	}
});
