'use strict';
'require view';
'require rpc';
'require poll';
'require dom';

/* Live status of the correspondent node: the ubus object `tmip`, method
 * `status` (served by tmipd), polled every 5 s; plus which procd instances
 * of tmipd/mlrd are running. */

var callStatus = rpc.declare({
	object: 'tmip',
	method: 'status',
	expect: { '': {} }
});

var callServiceList = rpc.declare({
	object: 'service',
	method: 'list',
	params: [ 'name' ],
	expect: { '': {} }
});

function instances(list, name) {
	var svc = (list && list[name]) ? list[name].instances : null;
	return svc ? Object.keys(svc).map(function(k) {
		return '%s (%s)'.format(k, svc[k].running ? _('running, PID %d').format(svc[k].pid) : _('stopped'));
	}) : [];
}

function table(headers, rows, empty) {
	return E('table', { 'class': 'table' }, [
		E('tr', { 'class': 'tr table-titles' }, headers.map(function(h) {
			return E('th', { 'class': 'th' }, h);
		}))
	].concat(rows.length ? rows.map(function(r) {
		return E('tr', { 'class': 'tr' }, r.map(function(c) {
			return E('td', { 'class': 'td' }, (c == null) ? '-' : String(c));
		}));
	}) : [ E('tr', { 'class': 'tr placeholder' }, [ E('td', { 'class': 'td' }, E('em', {}, empty)) ]) ]));
}

function render_status(st, svc) {
	var cn = [
		[ _('Name'), st.name ], [ _('CN address'), st.cn ], [ _('Network'), st.network ],
		[ _('MLR'), st.mlr ? '%s (%s)'.format(st.mlr, st.mlr_up ? _('connected') : _('down')) : null ],
		[ _('Version'), st.version ],
		[ _('tmipd instances'), instances(svc.tmipd, 'tmipd').join(', ') || _('none') ],
		[ _('mlrd instances'), instances(svc.mlrd, 'mlrd').join(', ') || _('none') ]
	];
	var stations = (st.stations || []).map(function(s) {
		return [ s.mac, s.ip, s.cell, s.parent, s.at, s.expires_in ];
	});
	var peers = (st.peers || []).map(function(p) {
		return [ p.cn, p.name, p.tunnel_users ];
	});
	var counters = st.counters ? Object.keys(st.counters).map(function(k) {
		return [ k, st.counters[k] ];
	}) : [];

	return E('div', {}, [
		E('h3', {}, _('Correspondent node')),
		table([ _('Item'), _('Value') ], cn, ''),
		E('h3', {}, _('Stations (%d of %s)').format(stations.length, st.max_stations || '?')),
		table([ _('MAC'), _('IP'), _('Cell'), _('Parent'), _('At'), _('Expires in (s)') ], stations, _('No stations')),
		E('h3', {}, _('Peer CNs')),
		table([ _('CN'), _('Name'), _('Tunnel users') ], peers, _('No peers')),
		E('h3', {}, _('Counters')),
		table([ _('Counter'), _('Value') ], counters, _('No counters'))
	]);
}

return view.extend({
	load: function() {
		return Promise.all([
			L.resolveDefault(callStatus(), null),
			L.resolveDefault(callServiceList('tmipd'), {}),
			L.resolveDefault(callServiceList('mlrd'), {})
		]);
	},

	draw: function(data) {
		var st = data[0], svc = { tmipd: data[1], mlrd: data[2] };
		if (!st || !Object.keys(st).length)
			return E('p', {}, E('em', {}, _('tmipd is not running or does not answer on ubus (object "tmip").')));
		return render_status(st, svc);
	},

	render: function(data) {
		var body = E('div', { 'id': 'tmip-status' }, this.draw(data));
		var self = this;

		poll.add(function() {
			return self.load().then(function(d) {
				dom.content(body, self.draw(d));
			});
		}, 5);

		return E('div', { 'class': 'cbi-map' }, [
			E('h2', {}, _('TMip mobility')),
			E('div', { 'class': 'cbi-map-descr' }, _('Stations served by this correspondent node, refreshed every 5 seconds.')),
			body
		]);
	},

	handleSave: null,
	handleSaveApply: null,
	handleReset: null
});
