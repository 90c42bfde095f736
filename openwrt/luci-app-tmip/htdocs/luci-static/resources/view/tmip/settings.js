'use strict';
'require view';
'require form';

/* /etc/config/tmip: the tmipd sections (one per CN instance) and the mlrd
 * section. Save & Apply commits through rpcd, which emits config.change:
 * procd's reload trigger then HUPs the daemons whose section changed. */

return view.extend({
	render: function() {
		var m, s, o;

		m = new form.Map('tmip', _('TMip mobility'),
			_('Correspondent nodes (tmipd) hand out /30 cells to Wi-Fi stations and keep them reachable across access points; the mobile location register (mlrd) tracks where each station is.'));

		s = m.section(form.TypedSection, 'tmipd', _('Correspondent nodes'));
		s.addremove = true;
		s.anonymous = false;

		o = s.option(form.Flag, 'enabled', _('Enabled'));
		o.rmempty = false;
		o.default = '0';
		s.option(form.Value, 'mlr', _('MLR'), _('host[:port], port 6554 by default'));
		s.option(form.Value, 'cn_name', _('CN name'));
		s.option(form.Value, 'network_name', _('Network name'));
		o = s.option(form.Value, 'tunnel_prefix', _('Tunnel prefix'), _('Unique per instance on this node'));
		o.placeholder = 'tmip0';
		s.option(form.Value, 'cn_if', _('CN interface'));
		s.option(form.Value, 'mobile_if', _('Mobile interface'));
		o = s.option(form.DynamicList, 'addr_pool', _('Address pools'), _('IFACE FIRST LAST, "*" for the subnet edge'));
		o.placeholder = 'wlan0 * *';
		o = s.option(form.Flag, 'dhcp', _('DHCP server'));
		o.default = '1';
		s.option(form.DynamicList, 'dns', _('DNS servers'));
		s.option(form.Value, 'domain', _('Domain'));
		o = s.option(form.DynamicList, 'static_route', _('Static routes'), _('NET/LEN GATEWAY'));
		o = s.option(form.Value, 'lease_time', _('Lease time (s)'));
		o.datatype = 'uinteger';
		o = s.option(form.Flag, 'reverse_tunnel', _('Reverse tunnel'));
		o.default = '1';
		o = s.option(form.ListValue, 'shared_link', _('Shared mobile link'), _('Other hosts on the mobile interface: "auto" (when it is the CN interface or a bridge), "on" or "off"'));
		o.value('auto');
		o.value('on');
		o.value('off');
		o.default = 'auto';
		o = s.option(form.Flag, 'source_guard', _('Source guard'), _('Forward a packet from the mobile interface only when its source MAC and IP are those of a station served here'));
		o.default = '1';
		o = s.option(form.ListValue, 'debug_level', _('Debug level'));
		for (var i = 0; i <= 7; i++)
			o.value(String(i));
		o.default = '1';
		o = s.option(form.Value, 'secret', _('Secret'));
		o.password = true;
		o = s.option(form.Value, 'hostapd_ctrl', _('hostapd control socket'), _('Station events from hostapd: a socket path, "auto" (/var/run/hostapd/&lt;mobile interface&gt;) or "off"'));
		o.value('auto');
		o.value('off');
		o.default = 'auto';
		o = s.option(form.Value, 'ubus', _('ubus socket'), _('A socket path, "auto" (/var/run/ubus/ubus.sock) or "off"'));
		o.value('auto');
		o.value('off');
		o.default = 'auto';
		o = s.option(form.Value, 'ubus_object', _('ubus object'), _('Default "tmip" for the section "main" (the status page reads it), "tmip.&lt;section&gt;" for others'));
		o.optional = true;

		s = m.section(form.TypedSection, 'mlrd', _('Mobile location register'));
		s.addremove = true;
		s.anonymous = false;

		o = s.option(form.Flag, 'enabled', _('Enabled'));
		o.rmempty = false;
		o.default = '0';
		s.option(form.Value, 'network_name', _('Network name'));
		o = s.option(form.Value, 'port', _('Port'));
		o.datatype = 'port';
		o.placeholder = '6554';
		s.option(form.Value, 'state_dir', _('State directory'));
		o = s.option(form.Value, 'lease_time', _('Lease time (s)'));
		o.datatype = 'uinteger';
		s.option(form.Value, 'backup_mlr', _('Backup MLR'));
		o = s.option(form.Value, 'secret', _('Secret'));
		o.password = true;

		return m.render();
	}
});
