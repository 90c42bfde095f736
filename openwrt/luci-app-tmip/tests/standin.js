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
	/* LuCI's poll runs a function again only once its previous run has
	 * settled, `secs` later: slow RPCs never stack up re-renders. */
	var poll = {
		add: function(fn, secs) {
			var ms = (secs || 5) * 1000;
			(function next() {
				setTimeout(function() {
					Promise.resolve().then(fn)
						.catch(function(e) { setTimeout(function() { throw e; }); })
						.then(next);
				}, ms);
			})();
		}
	};
	/* form.js, the parts the settings view uses, with LuCI's save rules:
	 * AbstractValue.parse writes a non-empty form value that differs from
	 * the config value and removes an empty one; FlagValue.parse removes a
	 * flag equal to its default when rmempty/optional, else writes it.
	 * Option validators (o.validate) run; datatypes are not checked here. */
	var uci = { sections: [], changes: [] };
	function isEqual(a, b) {
		if (Array.isArray(a) || Array.isArray(b))
			return JSON.stringify([].concat(a == null ? [] : a)) === JSON.stringify([].concat(b == null ? [] : b));
		return a === b;
	}
	/* LuCI renders option descriptions as HTML. */
	function html(node, markup) { node.innerHTML = markup; return node; }
	function Option(kind, name, title, descr) {
		this.kind = kind; this.option = name; this.title = title; this.description = descr;
		this.rmempty = true; this.optional = false; this.default = null; this.choices = [];
		this.widgets = {};
	}
	Option.prototype.value = function(v) { this.choices.push(v); };
	Option.prototype.cfgvalue = function(sid) {
		var s = uci.sections.filter(function(x) { return x.name === sid; })[0];
		return s ? s.options[this.option] : undefined;
	};
	Option.prototype.render = function(sid) {
		var cv = this.cfgvalue(sid), self = this, w;
		var id = 'cbid.tmip.' + sid + '.' + this.option;
		if (this.kind === 'flag') {
			w = E('input', { type: 'checkbox', id: id });
			w.checked = ((cv != null) ? cv : this.default) === '1';
		} else if (this.kind === 'list') {
			var items = (cv == null) ? [] : [].concat(cv);
			w = E('textarea', { id: id, rows: Math.max(1, items.length), placeholder: this.placeholder || '' });
			w.value = items.join('\n');
		} else {
			w = E('input', { type: this.password ? 'password' : 'text', id: id, placeholder: this.placeholder || '' });
			w.value = (cv != null) ? cv : (this.default != null ? this.default : '');
		}
		this.widgets[sid] = w;
		var err = E('div', { 'class': 'cbi-value-error', id: id + '.error' });
		return E('div', { 'class': 'cbi-value', 'data-option': this.option }, [
			E('label', { 'class': 'cbi-value-title', 'for': id }, this.title), w, err,
			this.description ? html(E('div', { 'class': 'cbi-value-description' }), this.description) : null ]);
	};
	Option.prototype.formvalue = function(sid) {
		var w = this.widgets[sid];
		if (this.kind === 'flag') return w.checked ? '1' : '0';
		if (this.kind === 'list') return w.value.split('\n').map(function(x) { return x.trim(); }).filter(function(x) { return x !== ''; });
		return w.value;
	};
	Option.prototype.isValid = function(sid) {
		var fv = this.formvalue(sid), self = this, msg = true;
		if (this.validate)
			[].concat(fv).forEach(function(v) { var r = self.validate(sid, v); if (r !== true && msg === true) msg = r; });
		document.getElementById('cbid.tmip.' + sid + '.' + this.option + '.error').textContent = (msg === true) ? '' : msg;
		return msg === true;
	};
	Option.prototype.parse = function(sid) {
		var cv = this.cfgvalue(sid), fv = this.formvalue(sid);
		if (this.kind === 'flag') {
			if (fv === this.default && (this.optional || this.rmempty)) return this.remove(sid, cv);
			return isEqual(cv, fv) ? null : this.write(sid, fv);
		}
		var empty = (fv == null || fv === '' || (Array.isArray(fv) && !fv.length));
		if (!empty) return isEqual(cv, fv) ? null : this.write(sid, fv);
		return this.remove(sid, cv);
	};
	Option.prototype.write = function(sid, v) { uci.changes.push({ op: 'set', section: sid, option: this.option, value: v }); };
	Option.prototype.remove = function(sid, cv) {
		if (cv != null) uci.changes.push({ op: 'unset', section: sid, option: this.option });
	};
	function TypedSection(map, type, title) { this.map = map; this.type = type; this.title = title; this.options = []; }
	TypedSection.prototype.option = function(cls, name, title, descr) {
		var o = new Option(cls.kind, name, title, descr);
		this.options.push(o);
		return o;
	};
	function Map(config, title, descr) { this.config = config; this.title = title; this.description = descr; this.sections = []; }
	Map.prototype.section = function(cls, type, title) { var s = new TypedSection(this, type, title); this.sections.push(s); return s; };
	Map.prototype.render = function() {
		var self = this;
		global.LuciStandin.map = this;
		return fetchJson('/uci/get?config=' + this.config).then(function(data) {
			uci.sections = data;
			return E('div', { 'class': 'cbi-map' }, [ E('h2', {}, self.title), E('div', { 'class': 'cbi-map-descr' }, self.description) ].concat(
				self.sections.map(function(ts) {
					return E('fieldset', { 'class': 'cbi-section' }, [ E('h3', {}, ts.title) ].concat(
						uci.sections.filter(function(s) { return s.type === ts.type; }).map(function(s) {
							return E('div', { 'class': 'cbi-section-node', 'data-section': s.name }, [ E('h4', {}, s.name) ].concat(
								ts.options.map(function(o) { return o.render(s.name); })));
						})));
				}), [ E('button', { id: 'save', 'class': 'cbi-button-apply' }, 'Save & Apply') ]));
		});
	};
	Map.prototype.save = function() {
		var ok = true;
		uci.changes = [];
		this.sections.forEach(function(ts) {
			uci.sections.filter(function(s) { return s.type === ts.type; }).forEach(function(s) {
				ts.options.forEach(function(o) { if (!o.isValid(s.name)) ok = false; });
			});
		});
		if (!ok) return Promise.resolve({ saved: false, changes: [] });
		this.sections.forEach(function(ts) {
			uci.sections.filter(function(s) { return s.type === ts.type; }).forEach(function(s) {
				ts.options.forEach(function(o) { o.parse(s.name); });
			});
		});
		var changes = uci.changes.slice();
		return fetch('/uci/apply', { method: 'POST', body: JSON.stringify(changes) }).then(function() {
			return { saved: true, changes: changes };
		});
	};
	var form = {
		Map: Map, TypedSection: {},
		Flag: { kind: 'flag' }, Value: { kind: 'value' }, DynamicList: { kind: 'list' }, ListValue: { kind: 'value' }
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
				var v = new Function('view', 'rpc', 'poll', 'dom', 'form', src)(view, rpc, poll, dom, form);
				return Promise.resolve(v.load ? v.load() : null).then(function(data) {
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
