/* A small stand-in for LuCI's client runtime (luci.js, rpc.js, dom.js,
 * poll.js, view.js), enough to run luci-app-tmip's status view in a real
 * browser: rpc.declare and rpc.list go to the test's HTTP server, which
 * forwards them to real tmipd instances over the spec-written ubusd
 * (tests/luci_views.rs). It is NOT LuCI: the view code is the shipped one,
 * loaded as LuCI loads views (its source wrapped in a function of the
 * required classes). */
'use strict';
(function(global) {
	String.prototype.format = function() {
		var args = arguments, i = 0;
		return this.replace(/%([sd%])/g, function(m, t) {
			if (t == '%') return '%';
			var v = args[i++];
			return (t == 'd') ? String(parseInt(v, 10)) : String(v);
		});
	};
	global._ = function(s) { return s; };

	function append(node, c) {
		if (c == null) return;
		if (Array.isArray(c)) { c.forEach(function(x) { append(node, x); }); return; }
		node.appendChild((c instanceof Node) ? c : document.createTextNode(String(c)));
	}
	global.E = function(tag, attrs, children) {
		var n = document.createElement(tag);
		Object.keys(attrs || {}).forEach(function(k) { n.setAttribute(k, attrs[k]); });
		append(n, children);
		return n;
	};
	var dom = {
		content: function(node, children) {
			while (node.firstChild) node.removeChild(node.firstChild);
			append(node, children);
			return node;
		}
	};
	var calls = 0;
	function fetchJson(url) {
		calls++;
		return fetch(url).then(function(r) {
			if (!r.ok) throw new Error('HTTP ' + r.status + ' for ' + url);
			return r.json();
		});
	}
	var rpc = {
		declare: function(d) {
			return function() {
				var q = new URLSearchParams({ object: d.object, method: d.method });
				var args = arguments;
				(d.params || []).forEach(function(p, i) { if (args[i] != null) q.set(p, args[i]); });
				return fetchJson('/ubus/call?' + q.toString()).then(function(r) {
					if (r.__status) throw new Error('ubus status ' + r.__status);
					return r;
				});
			};
		},
		list: function() { return fetchJson('/ubus/list'); }
	};
	var poll = {
		add: function(fn, secs) { setInterval(fn, (secs || 5) * 1000); }
	};
	var view = {
		extend: function(proto) { return proto; }
	};
	global.L = {
		resolveDefault: function(p, def) {
			return Promise.resolve(p).catch(function() { return def; });
		}
	};
	global.LuciStandin = {
		calls: function() { return calls; },
		run: function(path) {
			return fetch(path).then(function(r) { return r.text(); }).then(function(src) {
				var v = new Function('view', 'rpc', 'poll', 'dom', src)(view, rpc, poll, dom);
				return Promise.resolve(v.load()).then(function(data) {
					return v.render(data);
				}).then(function(node) {
					dom.content(document.getElementById('view'), node);
					document.body.setAttribute('data-rendered', '1');
				});
			}).catch(function(e) {
				document.body.setAttribute('data-error', String(e && e.stack || e));
			});
		}
	};
})(window);
