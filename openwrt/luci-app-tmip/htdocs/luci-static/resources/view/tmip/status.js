'use strict';
'require view';
'require rpc';
'require poll';
'require dom';

/* Live picture of every tmipd instance on this node (ubus objects `tmip`
 * and `tmip.<section>`, method `status`), polled every 5 s: the MLR, this
 * CN and its peer CNs, the stations below the CN they are at, with an
 * arrow from their parent CN when that is another CN, coloured by state;
 * then a timeline of the latest handovers to this CN with the interruption
 * the CN measured (bars), and the counters. Plain SVG, no external assets. */

var callServiceList = rpc.declare({
	object: 'service',
	method: 'list',
	params: [ 'name' ],
	expect: { '': {} }
});

var statusCalls = {};
function callStatus(object) {
	if (!statusCalls[object])
		statusCalls[object] = rpc.declare({ object: object, method: 'status', expect: { '': {} } });
	return statusCalls[object]();
}

var COLOURS = { home: '#2e7d32', visitor: '#1565c0', away: '#ef6c00', cn: '#37474f', me: '#00695c', mlr: '#6a1b9a' };

function esc(s) {
	return String(s == null ? '' : s).replace(/[&<>"']/g, function(c) {
		return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c];
	});
}

/* State of a station as this CN sees it. */
function stateOf(s) {
	if (s.at != 'here')
		return 'away';
	return (s.parent == 'here') ? 'home' : 'visitor';
}

/* The picture of one instance as SVG markup. */
function mapSvg(st) {
	var me = st.cn, stations = st.stations || [], W = 760, H = 380;
	var cns = [ me ];
	(st.peers || []).forEach(function(p) { if (cns.indexOf(p.cn) < 0) cns.push(p.cn); });
	stations.forEach(function(s) {
		[ s.parent, s.at ].forEach(function(a) {
			if (a && a != 'here' && cns.indexOf(a) < 0) cns.push(a);
		});
	});
	var names = {};
	names[me] = st.name || me;
	(st.peers || []).forEach(function(p) { names[p.cn] = p.name || _('peer CN'); });
	var addr = function(a) { return (a == 'here') ? me : a; };
	/* This CN in the middle, peers left and right of it. */
	var order = cns.slice(1).sort();
	var half = Math.floor(order.length / 2);
	order = order.slice(0, half).concat([ me ], order.slice(half));
	var pos = {};
	order.forEach(function(a, i) {
		pos[a] = { x: Math.round(W * (i + 1) / (order.length + 1)), y: 170 };
	});
	var o = [];
	o.push('<svg xmlns="http://www.w3.org/2000/svg" id="tmip-map-' + esc(st.__object) + '" class="tmip-map" viewBox="0 0 ' + W + ' ' + H + '" width="100%" style="max-width:' + W + 'px;font-family:sans-serif;font-size:12px;background:#fafafa;border:1px solid #ddd;border-radius:6px">');
	o.push('<defs>');
	[ 'visitor', 'away', 'home' ].forEach(function(k) {
		o.push('<marker id="tmip-head-' + k + '" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="' + COLOURS[k] + '"/></marker>');
	});
	o.push('</defs>');
	/* The MLR and its links to the CNs. */
	var mlr = { x: W / 2, y: 46 };
	order.forEach(function(a) {
		var up = (a == me) ? st.mlr_up : true;
		o.push('<line x1="' + mlr.x + '" y1="' + (mlr.y + 18) + '" x2="' + pos[a].x + '" y2="' + (pos[a].y - 22) + '" stroke="' + (up ? '#9e9e9e' : '#c62828') + '" stroke-dasharray="4 4"/>');
	});
	o.push('<g data-node="mlr" data-addr="' + esc(st.mlr) + '"><rect x="' + (mlr.x - 70) + '" y="' + (mlr.y - 18) + '" width="140" height="36" rx="8" fill="' + COLOURS.mlr + '"/>');
	o.push('<text x="' + mlr.x + '" y="' + (mlr.y - 2) + '" text-anchor="middle" fill="#fff" font-weight="bold">MLR</text>');
	o.push('<text x="' + mlr.x + '" y="' + (mlr.y + 12) + '" text-anchor="middle" fill="#fff">' + esc(st.mlr) + (st.mlr_up ? '' : ' (down)') + '</text></g>');
	/* Stations below the CN they are at. */
	var byAt = {};
	stations.forEach(function(s) { (byAt[addr(s.at)] = byAt[addr(s.at)] || []).push(s); });
	var spos = {};
	Object.keys(byAt).forEach(function(a) {
		var list = byAt[a].slice().sort(function(x, y) { return x.mac < y.mac ? -1 : 1; });
		list.forEach(function(s, i) {
			spos[s.mac] = { x: pos[a].x + (i - (list.length - 1) / 2) * 64, y: 300 };
		});
	});
	/* Arrows from the parent CN to the CN the station is at. */
	stations.forEach(function(s) {
		var from = addr(s.parent), to = addr(s.at), k = stateOf(s);
		if (from == to)
			return;
		var a = pos[from], b = pos[to];
		/* From the parent's box edge to the other box's edge, bending below. */
		var dir = (b.x > a.x) ? 1 : -1, bend = 48 + 14 * (Object.keys(spos).indexOf(s.mac) % 3);
		o.push('<path data-arrow="' + esc(s.mac) + '" data-from="' + esc(from) + '" data-to="' + esc(to) + '" d="M' + (a.x + dir * 62) + ',' + (a.y + 8) + ' C' + (a.x + dir * 100) + ',' + (a.y + bend) + ' ' + (b.x - dir * 100) + ',' + (b.y + bend) + ' ' + (b.x - dir * 64) + ',' + (b.y + 10) + '" fill="none" stroke="' + COLOURS[k] + '" stroke-width="2.5" marker-end="url(#tmip-head-' + k + ')"/>');
		o.push('<text x="' + ((a.x + b.x) / 2) + '" y="' + (a.y + bend - 4) + '" text-anchor="middle" fill="' + COLOURS[k] + '" font-size="11">' + esc(s.mac.slice(-5)) + '</text>');
	});
	/* The CNs. */
	order.forEach(function(a) {
		var pt = pos[a], mine = (a == me);
		o.push('<g data-node="cn" data-addr="' + esc(a) + '"' + (mine ? ' data-me="1"' : '') + '>');
		o.push('<rect x="' + (pt.x - 62) + '" y="' + (pt.y - 22) + '" width="124" height="44" rx="8" fill="' + (mine ? COLOURS.me : COLOURS.cn) + '"' + (mine ? ' stroke="#004d40" stroke-width="3"' : '') + '/>');
		o.push('<text x="' + pt.x + '" y="' + (pt.y - 4) + '" text-anchor="middle" fill="#fff" font-weight="bold">' + esc(String(names[a] || _('peer CN')).slice(0, 18)) + '</text>');
		o.push('<text x="' + pt.x + '" y="' + (pt.y + 12) + '" text-anchor="middle" fill="#fff">' + esc(a) + '</text></g>');
	});
	/* The stations, linked to the CN they are at. */
	stations.forEach(function(s) {
		var pt = spos[s.mac], c = pos[addr(s.at)], k = stateOf(s);
		o.push('<line x1="' + c.x + '" y1="' + (c.y + 22) + '" x2="' + pt.x + '" y2="' + (pt.y - 14) + '" stroke="' + COLOURS[k] + '" stroke-opacity="0.5"/>');
		o.push('<g data-node="station" data-mac="' + esc(s.mac) + '" data-state="' + k + '" data-at="' + esc(addr(s.at)) + '" data-parent="' + esc(addr(s.parent)) + '">');
		o.push('<circle cx="' + pt.x + '" cy="' + pt.y + '" r="14" fill="' + COLOURS[k] + '"/>');
		o.push('<text x="' + pt.x + '" y="' + (pt.y + 4) + '" text-anchor="middle" fill="#fff" font-size="10">' + esc(s.mac.slice(-5)) + '</text>');
		o.push('<text x="' + pt.x + '" y="' + (pt.y + 30) + '" text-anchor="middle" fill="#333" font-size="11">' + esc(s.ip) + '</text></g>');
	});
	/* Legend. */
	[ [ 'home', _('at its parent') ], [ 'visitor', _('visiting here') ], [ 'away', _('parented here, away') ] ].forEach(function(l, i) {
		var x = 14 + i * 170;
		o.push('<circle cx="' + (x + 6) + '" cy="' + (H - 14) + '" r="6" fill="' + COLOURS[l[0]] + '"/><text x="' + (x + 18) + '" y="' + (H - 10) + '" fill="#333">' + esc(l[1]) + '</text>');
	});
	if (!stations.length)
		o.push('<text x="' + (W / 2) + '" y="300" text-anchor="middle" fill="#777">' + esc(_('No stations')) + '</text>');
	o.push('</svg>');
	return o.join('');
}

/* The latest handovers to this CN: one bar per handover, its length the
 * interruption the CN measured (first frame or association to adoption). */
function timelineSvg(st) {
	var hs = (st.handovers || []).slice(-12).reverse(), W = 760, row = 22, H = 30 + row * Math.max(hs.length, 1);
	var max = Math.max.apply(null, [ 1 ].concat(hs.map(function(h) { return h.interruption_ms; })));
	var o = [ '<svg xmlns="http://www.w3.org/2000/svg" class="tmip-timeline" viewBox="0 0 ' + W + ' ' + H + '" width="100%" style="max-width:' + W + 'px;font-family:sans-serif;font-size:12px">' ];
	o.push('<text x="0" y="14" fill="#333" font-weight="bold">' + esc(_('Latest handovers to this CN (interruption measured by the CN)')) + '</text>');
	if (!hs.length)
		o.push('<text x="0" y="40" fill="#777">' + esc(_('None yet')) + '</text>');
	hs.forEach(function(h, i) {
		var y = 26 + i * row, w = Math.max(2, Math.round(300 * h.interruption_ms / max));
		o.push('<g data-handover="' + esc(h.mac) + '" data-from="' + esc(h.from) + '" data-ms="' + h.interruption_ms + '">');
		o.push('<text x="0" y="' + (y + 12) + '" fill="#333">' + esc(h.mac) + ' ' + esc(_('from')) + ' ' + esc(h.from) + ', ' + esc(_('%ds ago').format(h.ago)) + '</text>');
		o.push('<rect x="330" y="' + (y + 2) + '" width="' + w + '" height="14" rx="3" fill="' + COLOURS.visitor + '"/>');
		o.push('<text x="' + (336 + w) + '" y="' + (y + 13) + '" fill="#333">' + h.interruption_ms.toFixed(1) + ' ms</text></g>');
	});
	o.push('</svg>');
	return o.join('');
}

function svgBox(markup) {
	var d = E('div', { 'class': 'tmip-svg' });
	d.innerHTML = markup;
	return d;
}

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

function renderInstance(st) {
	var counters = st.counters ? Object.keys(st.counters).map(function(k) {
		return [ k, st.counters[k] ];
	}) : [];
	return E('div', { 'class': 'cbi-section', 'data-instance': st.__object }, [
		E('h3', {}, '%s: %s (%s)'.format(st.__object, st.name || '?', st.cn || '?')),
		E('div', { 'class': 'cbi-section-descr' }, _('Network %s, MLR %s (%s), %d of %s stations').format(
			st.network || '?', st.mlr || '?', st.mlr_up ? _('connected') : _('down'),
			(st.stations || []).length, st.max_stations || '?')),
		svgBox(mapSvg(st)),
		svgBox(timelineSvg(st)),
		E('h4', {}, _('Counters')),
		table([ _('Counter'), _('Value') ], counters, _('No counters'))
	]);
}

return view.extend({
	load: function() {
		return L.resolveDefault(rpc.list(), []).then(function(objs) {
			var names = (Array.isArray(objs) ? objs : Object.keys(objs || {})).filter(function(n) {
				return /^tmip(\.[A-Za-z0-9_-]+)?$/.test(n);
			}).sort();
			return Promise.all([
				Promise.all(names.map(function(n) {
					return L.resolveDefault(callStatus(n), null).then(function(st) {
						if (st && Object.keys(st).length)
							st.__object = n;
						return st;
					});
				})),
				L.resolveDefault(callServiceList('tmipd'), {}),
				L.resolveDefault(callServiceList('mlrd'), {})
			]);
		});
	},

	draw: function(data) {
		var sts = (data[0] || []).filter(function(x) { return x && x.__object; });
		var svc = { tmipd: data[1], mlrd: data[2] };
		var procs = E('p', {}, _('procd: tmipd %s; mlrd %s').format(
			instances(svc.tmipd, 'tmipd').join(', ') || _('none'),
			instances(svc.mlrd, 'mlrd').join(', ') || _('none')));
		if (!sts.length)
			return E('div', {}, [ E('p', {}, E('em', {}, _('No tmipd answers on ubus (objects "tmip", "tmip.<section>").'))), procs ]);
		return E('div', {}, sts.map(renderInstance).concat([ procs ]));
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
			E('div', { 'class': 'cbi-map-descr' }, _('Every tmipd instance on this node, refreshed every 5 seconds: the MLR, this CN and its peers, the stations (arrow: from their parent CN to the CN they are at), the latest handovers and the counters.')),
			body
		]);
	},

	handleSave: null,
	handleSaveApply: null,
	handleReset: null
});
