//! The layering check (issue 11, "the house"): no module imports upward, and
//! no source file depends on itself around a circle of imports.
//!
//! It reads the sources of the tmip library and the tmipd binary (`src/`),
//! mlrd (`mlrd/src/`) and tmip-hostap (`hostap/src/`), walks their module
//! trees as rustc does (`mod x;`, `#[path]`, inline `mod x { }`), resolves
//! every `use` and every path that starts with `crate`, `super`, `self`, an
//! extern crate of ours or a name a `use` brought in, to the file that
//! defines the item, and checks:
//!
//! (a) [`LAYERS`]: a module may use modules of its own layer or of layers
//!     below it, never above. Every module must have a layer: a new
//!     top-level module fails the check until it is placed in the table.
//! (b) no cycles between files: in the graph "file A uses an item defined in
//!     file B" every strongly connected component is a single file.
//!
//! A `pub use` that re-exports the module's own descendants (a facade, as
//! `mlrp/mod.rs` is) is not a dependency of the facade file; a path through
//! it leads to the file that defines the item. Naming a module (`use
//! crate::mlrp;`) is not a file dependency by itself (the items used through
//! it are), but it counts for the layers. `use m::*` depends on `m`'s file.
//!
//! The table is written down once more, in words, in docs/ARCHITECTURE.md
//! ("Layers"). Run it alone with `cargo test --test layering`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

/// The layers, lowest first. An entry names a module by its path with the
/// crate in front (`tmip::cn`, `mlrd::server`) and covers its submodules
/// unless a longer entry names them (`tmip::cn::core` is in a lower layer
/// than the rest of `tmip::cn`); a crate's name alone is its root file only.
/// Modules of one layer may use each other (the file-circle check still
/// applies); a top-level module missing here fails the check.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "foundations: addresses, wire views, OS calls, process and logging plumbing",
        &[
            "tmip",
            "tmip::addr",
            "tmip::wire",
            "tmip::sys",
            "tmip::event_loop",
            "tmip::log_throttle",
            "tmip::logging",
            "tmip::process_setup",
        ],
    ),
    (
        "protocols and kernel interfaces",
        &[
            "tmip::dhcp",
            "tmip::mlrp",
            "tmip::netlink",
            // finds its interface's index and MAC with netlink
            "tmip::packet_socket",
            "tmip::tunnel",
            "tmip::ubus",
            "tmip::classify",
            "tmip::capture",
            "hostap",
            "hostap::ctrl",
            "hostap::event",
            "hostap::ubus_events",
        ],
    ),
    ("configuration", &["tmip::config"]),
    (
        "the CN's sans-IO core (no sockets, no daemon shell)",
        &[
            "tmip::cn::core",
            "tmip::cn::admission",
            "tmip::cn::dataplane",
            "tmip::cn::events",
            "tmip::cn::stations",
            "tmip::cn::mlr_link",
            "tmip::cn::translate",
        ],
    ),
    (
        "the CN's data-plane implementations and daemon shell",
        &["tmip::cn"],
    ),
    (
        "mlrd's sans-IO register and pair roles",
        &["mlrd::register", "mlrd::pair"],
    ),
    (
        "mlrd's configuration, journal, request policy, status",
        &[
            "mlrd::config",
            "mlrd::journal",
            "mlrd::service",
            "mlrd::status",
        ],
    ),
    ("mlrd's poll loop and replication", &["mlrd::server"]),
    ("the daemons' entry points", &["tmipd", "mlrd"]),
];

/// Import circles that exist today and that another branch removes. Each
/// entry is the exact set of files of one strongly connected component.
/// An entry that no longer matches a circle fails the check, so it is
/// deleted as soon as the circle is gone. (None today: the last one,
/// `mlrp/frame.rs` <-> `mlrp/message.rs`, was broken by the `mlrp` branch.)
/// Do not add entries here: fix the circle instead.
const ALLOWED_CYCLES: &[&[&str]] = &[];

/// Pairs that must not use each other although the layers would allow the
/// first to use the second: mlrd is not a CN (it once resolved host names
/// through tmipd's poll loop).
const APART: &[(&str, &str)] = &[("mlrd", "tmip::cn")];

/// The crates checked: name, root file, and the extern crates of ours that
/// its paths may start with.
const CRATES: &[(&str, &str, &[&str])] = &[
    ("tmip", "src/lib.rs", &["hostap"]),
    ("tmipd", "src/main.rs", &["tmip", "hostap"]),
    ("mlrd", "mlrd/src/main.rs", &["tmip"]),
    ("hostap", "hostap/src/lib.rs", &[]),
];

#[test]
fn no_upward_imports_and_no_import_circles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |rel: &str| std::fs::read_to_string(root.join(rel)).ok();
    let tree = Tree::load(&read, CRATES).unwrap_or_else(|e| panic!("{e}"));
    let graph = tree.graph();
    assert!(
        graph.nodes.len() > 50 && graph.edges.len() > 300,
        "the walk found only {} files and {} references: the parser is broken",
        graph.nodes.len(),
        graph.edges.len()
    );
    // Every source file is reached by the walk, or it would go unchecked.
    let walked: BTreeSet<&str> = graph.nodes.iter().map(|n| n.file.as_str()).collect();
    let mut on_disk = Vec::new();
    for dir in ["src", "mlrd/src", "hostap/src"] {
        rust_files(root, dir, &mut on_disk);
    }
    let missed: Vec<&String> = on_disk
        .iter()
        .filter(|f| !walked.contains(f.as_str()))
        .collect();
    assert!(
        missed.is_empty(),
        "not reached from a crate root: {missed:?}"
    );
    let mut problems = check(&graph, LAYERS, ALLOWED_CYCLES);
    problems.extend(apart(&graph, APART));
    assert!(
        problems.is_empty(),
        "{} layering problem(s) (table and rules: tests/layering.rs, docs/ARCHITECTURE.md):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// The `.rs` files under `root/dir`, as paths relative to `root`.
fn rust_files(root: &Path, dir: &str, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let rel = format!("{dir}/{name}");
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            rust_files(root, &rel, out);
        } else if name.ends_with(".rs") {
            out.push(rel);
        }
    }
}

// ---------------------------------------------------------------------------
// The checker: a graph of files, the layer of each file and each reference.

/// One source file and its module (`crate::a::b`), which picks its layer.
#[derive(Debug, Clone)]
struct Node {
    file: String,
    key: String,
}

/// A reference from a file to a module (`to_key`, for the layers) and, when
/// it names an item, to the file that defines it (for the cycles).
#[derive(Debug, Clone)]
struct Edge {
    from: usize,
    line: usize,
    to_key: String,
    to_file: Option<usize>,
    what: String,
}

#[derive(Debug, Default)]
struct Graph {
    nodes: Vec<Node>,
    edges: Vec<Edge>,
}

/// Every upward reference, every circle of files, every module without a
/// layer and every stale allow-list entry, as one line each.
fn check(g: &Graph, layers: &[(&str, &[&str])], allowed: &[&[&str]]) -> Vec<String> {
    let mut out = Vec::new();

    let mut unplaced = BTreeSet::new();
    for n in &g.nodes {
        if layer_of(layers, &n.key).is_none() {
            unplaced.insert(n.key.clone());
        }
    }
    for k in &unplaced {
        out.push(format!("module {k} has no layer: add it to LAYERS"));
    }

    let mut seen = HashSet::new();
    for e in &g.edges {
        let from = &g.nodes[e.from];
        let (Some(lf), Some(lt)) = (layer_of(layers, &from.key), layer_of(layers, &e.to_key))
        else {
            continue;
        };
        if lt > lf && seen.insert((e.from, e.to_key.clone())) {
            out.push(format!(
                "upward: {}:{} ({}, layer \"{}\") uses {} ({}, layer \"{}\")",
                from.file, e.line, from.key, layers[lf].0, e.what, e.to_key, layers[lt].0
            ));
        }
    }

    let mut found: Vec<BTreeSet<String>> = Vec::new();
    for scc in strongly_connected(g) {
        if scc.len() < 2 {
            continue;
        }
        let files: BTreeSet<String> = scc.iter().map(|&i| g.nodes[i].file.clone()).collect();
        found.push(files.clone());
        if allowed
            .iter()
            .any(|a| a.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>() == files)
        {
            continue;
        }
        let members: HashSet<usize> = scc.iter().copied().collect();
        let mut why = BTreeSet::new();
        for e in &g.edges {
            if let Some(t) = e.to_file {
                if members.contains(&e.from) && members.contains(&t) && e.from != t {
                    why.insert(format!(
                        "    {}:{} uses {} ({})",
                        g.nodes[e.from].file, e.line, e.what, g.nodes[t].file
                    ));
                }
            }
        }
        out.push(format!(
            "circle of imports between {}:\n{}",
            files.iter().cloned().collect::<Vec<_>>().join(", "),
            why.into_iter().collect::<Vec<_>>().join("\n")
        ));
    }
    for a in allowed {
        let a: BTreeSet<String> = a.iter().map(|s| s.to_string()).collect();
        if !found.contains(&a) {
            out.push(format!(
                "ALLOWED_CYCLES lists {a:?}, which is no longer a circle: delete the entry"
            ));
        }
    }
    out
}

/// Every use of a module under `b` by a module under `a`, for each pair.
fn apart(g: &Graph, pairs: &[(&str, &str)]) -> Vec<String> {
    let under = |key: &str, m: &str| key == m || key.starts_with(&format!("{m}::"));
    let mut out = Vec::new();
    for e in &g.edges {
        let from = &g.nodes[e.from];
        for (a, b) in pairs {
            if under(&from.key, a) && under(&e.to_key, b) {
                out.push(format!(
                    "apart: {}:{} ({}) uses {} ({}); {a} must not use {b}",
                    from.file, e.line, from.key, e.what, e.to_key
                ));
            }
        }
    }
    out
}

/// The layer of module `key` (`crate::a::b`): that of the longest entry
/// equal to it or, unless the entry is a bare crate name, a prefix of it.
fn layer_of(layers: &[(&str, &[&str])], key: &str) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None;
    for (i, (_, entries)) in layers.iter().enumerate() {
        for e in entries.iter() {
            let covers = key == *e
                || (e.contains("::") && key.starts_with(e) && key[e.len()..].starts_with("::"));
            if covers && best.is_none_or(|(len, _)| e.len() > len) {
                best = Some((e.len(), i));
            }
        }
    }
    best.map(|(_, i)| i)
}

/// Tarjan's strongly connected components over the file edges.
fn strongly_connected(g: &Graph) -> Vec<Vec<usize>> {
    let n = g.nodes.len();
    let mut adj = vec![BTreeSet::new(); n];
    for e in &g.edges {
        if let Some(t) = e.to_file {
            if t != e.from {
                adj[e.from].insert(t);
            }
        }
    }
    let adj: Vec<Vec<usize>> = adj.into_iter().map(|s| s.into_iter().collect()).collect();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut next = 0;
    let mut out = Vec::new();
    // Iterative, so a long chain of files cannot overflow the test's stack.
    for start in 0..n {
        if index[start] != usize::MAX {
            continue;
        }
        let mut work = vec![(start, 0usize)];
        while let Some(&mut (v, ref mut i)) = work.last_mut() {
            if *i == 0 && index[v] == usize::MAX {
                index[v] = next;
                low[v] = next;
                next += 1;
                stack.push(v);
                on_stack[v] = true;
            }
            if let Some(&w) = adj[v].get(*i) {
                *i += 1;
                if index[w] == usize::MAX {
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(p, _)) = work.last() {
                low[p] = low[p].min(low[v]);
            }
            if low[v] == index[v] {
                let mut scc = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    scc.push(w);
                    if w == v {
                        break;
                    }
                }
                out.push(scc);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// The lexer: identifiers, `::`, string literals (for `#[path]`), punctuation.
// Comments, other literals and lifetimes are dropped.

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    PathSep,
    Punct(char),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

fn lex(src: &str) -> Vec<Token> {
    let c: Vec<char> = src.chars().collect();
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let ident_start = |ch: char| ch == '_' || ch.is_alphabetic();
    let ident_char = |ch: char| ch == '_' || ch.is_alphanumeric();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if c[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if ident_start(ch) {
            // String prefixes: r"", r#""#, b"", br"", c"", cr"", b''.
            let mut j = i;
            if ch == 'b' || ch == 'c' {
                j += 1;
            }
            let raw = at(j) == 'r' && (at(j + 1) == '"' || at(j + 1) == '#');
            let raw_string = raw && {
                let mut k = j + 1;
                while at(k) == '#' {
                    k += 1;
                }
                at(k) == '"'
            };
            if raw_string {
                let start_line = line;
                let mut k = j + 1;
                let mut hashes = 0;
                while at(k) == '#' {
                    hashes += 1;
                    k += 1;
                }
                k += 1;
                let body_start = k;
                loop {
                    if k >= c.len() {
                        break;
                    }
                    if c[k] == '"' && (1..=hashes).all(|h| at(k + h) == '#') {
                        break;
                    }
                    if c[k] == '\n' {
                        line += 1;
                    }
                    k += 1;
                }
                let s: String = c[body_start..k.min(c.len())].iter().collect();
                out.push(Token {
                    tok: Tok::Str(s),
                    line: start_line,
                });
                i = k + 1 + hashes;
            } else if j > i && at(j) == '"' {
                i = j; // b"..." / c"...": the string is lexed next
            } else if ch == 'b' && at(i + 1) == '\'' {
                i = char_literal_end(&c, i + 1);
            } else if ch == 'r' && at(i + 1) == '#' && ident_start(at(i + 2)) {
                let s = i + 2;
                i = s;
                while i < c.len() && ident_char(c[i]) {
                    i += 1;
                }
                out.push(Token {
                    tok: Tok::Ident(format!("r#{}", c[s..i].iter().collect::<String>())),
                    line,
                });
            } else {
                let s = i;
                while i < c.len() && ident_char(c[i]) {
                    i += 1;
                }
                out.push(Token {
                    tok: Tok::Ident(c[s..i].iter().collect()),
                    line,
                });
            }
        } else if ch.is_ascii_digit() {
            while i < c.len() && ident_char(c[i]) {
                i += 1;
            }
        } else if ch == '"' {
            let (s, next, lines) = string_at(&c, i);
            out.push(Token {
                tok: Tok::Str(s),
                line,
            });
            line += lines;
            i = next;
        } else if ch == '\'' {
            // A char literal ('a', '\n', '\u{1F600}') or a lifetime ('a).
            if at(i + 1) == '\\' || at(i + 2) == '\'' {
                i = char_literal_end(&c, i);
            } else {
                i += 1;
                while i < c.len() && ident_char(c[i]) {
                    i += 1;
                }
            }
        } else if ch == ':' && at(i + 1) == ':' {
            out.push(Token {
                tok: Tok::PathSep,
                line,
            });
            i += 2;
        } else {
            out.push(Token {
                tok: Tok::Punct(ch),
                line,
            });
            i += 1;
        }
    }
    out
}

/// The string literal starting at the `"` at `i`: its text, the index after
/// it, the newlines it holds.
fn string_at(c: &[char], i: usize) -> (String, usize, usize) {
    let mut k = i + 1;
    let mut s = String::new();
    let mut lines = 0;
    while k < c.len() && c[k] != '"' {
        if c[k] == '\\' {
            k += 1;
        }
        if let Some(&ch) = c.get(k) {
            if ch == '\n' {
                lines += 1;
            }
            s.push(ch);
        }
        k += 1;
    }
    (s, k + 1, lines)
}

/// The index after the char literal whose opening `'` is at `i`.
fn char_literal_end(c: &[char], i: usize) -> usize {
    let mut k = i + 1;
    while k < c.len() && c[k] != '\'' && c[k] != '\n' {
        if c[k] == '\\' {
            k += 1;
        }
        k += 1;
    }
    k + 1
}

// ---------------------------------------------------------------------------
// One file parsed: its inline modules, their items, imports, `mod x;`
// declarations, and the paths its code uses.

#[derive(Debug, Clone)]
struct Import {
    /// The name it brings into scope; `None` for a glob (`use m::*`).
    alias: Option<String>,
    path: Vec<String>,
    public: bool,
    line: usize,
}

#[derive(Debug, Default)]
struct LocalMod {
    /// Path inside the file (empty: the file's own module).
    inline: Vec<String>,
    items: HashSet<String>,
    imports: Vec<Import>,
    /// `mod x;` with its `#[path]`, if any.
    file_children: Vec<(String, Option<String>)>,
    inline_children: Vec<(String, usize)>,
}

#[derive(Debug)]
struct CodeRef {
    local: usize,
    path: Vec<String>,
    line: usize,
}

#[derive(Debug, Default)]
struct Parsed {
    mods: Vec<LocalMod>,
    refs: Vec<CodeRef>,
}

const ITEM_KEYWORDS: &[&str] = &[
    "fn", "struct", "enum", "union", "trait", "type", "const", "static",
];

fn parse(src: &str) -> Parsed {
    let t = lex(src);
    let id = |i: usize| match t.get(i).map(|x| &x.tok) {
        Some(Tok::Ident(s)) => Some(s.as_str()),
        _ => None,
    };
    let is = |i: usize, want: Tok| t.get(i).map(|x| &x.tok) == Some(&want);
    let mut p = Parsed {
        mods: vec![LocalMod::default()],
        refs: Vec::new(),
    };
    // (local module, brace depth of its body)
    let mut stack: Vec<(usize, usize)> = vec![(0, 0)];
    let mut depth = 0usize;
    let mut path_attr: Option<String> = None;
    let mut i = 0;
    while i < t.len() {
        let (cur, body) = *stack.last().unwrap_or(&(0, 0));
        match &t[i].tok {
            Tok::Punct('{') => {
                depth += 1;
                i += 1;
            }
            Tok::Punct('}') => {
                depth = depth.saturating_sub(1);
                if stack.len() > 1 && depth < body {
                    stack.pop();
                }
                i += 1;
            }
            Tok::Punct('#')
                if is(i + 1, Tok::Punct('['))
                    && id(i + 2) == Some("path")
                    && is(i + 3, Tok::Punct('=')) =>
            {
                if let Some(Tok::Str(s)) = t.get(i + 4).map(|x| &x.tok) {
                    path_attr = Some(s.clone());
                }
                i += 5;
            }
            Tok::Ident(k) if k == "mod" && id(i + 1).is_some() => {
                let name = id(i + 1).unwrap_or_default().to_string();
                if is(i + 2, Tok::Punct(';')) {
                    p.mods[cur].file_children.push((name, path_attr.take()));
                    i += 3;
                } else if is(i + 2, Tok::Punct('{')) {
                    let mut inline = p.mods[cur].inline.clone();
                    inline.push(name.clone());
                    p.mods.push(LocalMod {
                        inline,
                        ..LocalMod::default()
                    });
                    let new = p.mods.len() - 1;
                    p.mods[cur].inline_children.push((name, new));
                    stack.push((new, depth + 1));
                    path_attr = None;
                    i += 2; // the `{` is counted above
                } else {
                    i += 1;
                }
            }
            Tok::Ident(k) if k == "use" => {
                let public = is_public(&t, i);
                let line = t[i].line;
                let mut j = i + 1;
                let mut leaves = Vec::new();
                parse_use_tree(&t, &mut j, Vec::new(), &mut leaves);
                while j < t.len() && !is(j, Tok::Punct(';')) {
                    j += 1;
                }
                for (path, alias) in leaves {
                    p.mods[cur].imports.push(Import {
                        alias,
                        path,
                        public,
                        line,
                    });
                }
                i = j + 1;
            }
            Tok::Ident(k) if depth == body && ITEM_KEYWORDS.contains(&k.as_str()) => {
                let mut j = i + 1;
                if id(j) == Some("mut") {
                    j += 1;
                }
                if let Some(name) = id(j) {
                    if !ITEM_KEYWORDS.contains(&name) && name != "_" {
                        p.mods[cur].items.insert(name.to_string());
                    }
                }
                i += 1;
            }
            Tok::Ident(first) if is(i + 1, Tok::PathSep) => {
                let line = t[i].line;
                let mut path = Vec::new();
                if i > 0 && is(i - 1, Tok::PathSep) {
                    path.push("::".to_string());
                }
                path.push(first.clone());
                let mut j = i + 1;
                while is(j, Tok::PathSep) {
                    match id(j + 1) {
                        Some(s) => {
                            path.push(s.to_string());
                            j += 2;
                        }
                        None => break,
                    }
                }
                p.refs.push(CodeRef {
                    local: cur,
                    path,
                    line,
                });
                i = j;
            }
            _ => i += 1,
        }
    }
    p
}

/// Whether the `use` at `i` is `pub use` or `pub(...) use`.
fn is_public(t: &[Token], i: usize) -> bool {
    let ident = |k: usize| matches!(&t[k].tok, Tok::Ident(s) if s == "pub");
    if i >= 1 && ident(i - 1) {
        return true;
    }
    if i >= 1 && t[i - 1].tok == Tok::Punct(')') {
        let mut k = i - 1;
        while k > 0 && t[k].tok != Tok::Punct('(') {
            k -= 1;
        }
        return k >= 1 && ident(k - 1);
    }
    false
}

/// One use tree from `i`: each leaf's full path and the name it binds
/// (`None` for `*`).
fn parse_use_tree(
    t: &[Token],
    i: &mut usize,
    mut path: Vec<String>,
    out: &mut Vec<(Vec<String>, Option<String>)>,
) {
    if t.get(*i).map(|x| &x.tok) == Some(&Tok::PathSep) {
        if path.is_empty() {
            path.push("::".to_string());
        }
        *i += 1;
    }
    loop {
        match t.get(*i).map(|x| &x.tok) {
            Some(Tok::Ident(s)) => {
                path.push(s.clone());
                *i += 1;
                if t.get(*i).map(|x| &x.tok) == Some(&Tok::PathSep) {
                    *i += 1;
                    continue;
                }
                if path.last().map(String::as_str) == Some("self") {
                    path.pop();
                }
                let mut alias = path.last().cloned();
                if matches!(t.get(*i).map(|x| &x.tok), Some(Tok::Ident(a)) if a == "as") {
                    if let Some(Tok::Ident(a)) = t.get(*i + 1).map(|x| &x.tok) {
                        alias = Some(a.clone());
                    }
                    *i += 2;
                }
                out.push((path, alias));
                return;
            }
            Some(Tok::Punct('*')) => {
                *i += 1;
                out.push((path, None));
                return;
            }
            Some(Tok::Punct('{')) => {
                *i += 1;
                loop {
                    match t.get(*i).map(|x| &x.tok) {
                        None => return,
                        Some(Tok::Punct('}')) => {
                            *i += 1;
                            return;
                        }
                        Some(Tok::Punct(',')) => *i += 1,
                        _ => {
                            let before = *i;
                            parse_use_tree(t, i, path.clone(), out);
                            if *i == before {
                                *i += 1;
                            }
                        }
                    }
                }
            }
            _ => return,
        }
    }
}

// ---------------------------------------------------------------------------
// The module trees of all crates, and name resolution over them.

#[derive(Debug)]
struct Module {
    krate: usize,
    path: Vec<String>,
    file: usize,
    parent: Option<usize>,
    children: BTreeMap<String, usize>,
    items: HashSet<String>,
    imports: Vec<Import>,
}

#[derive(Debug)]
struct SrcFile {
    rel: String,
    module: usize,
    refs: Vec<(usize, Vec<String>, usize)>,
}

#[derive(Debug)]
struct Crate {
    name: String,
    root: usize,
    externs: Vec<String>,
}

#[derive(Debug, Default)]
struct Tree {
    crates: Vec<Crate>,
    modules: Vec<Module>,
    files: Vec<SrcFile>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Target {
    /// A module named as a namespace.
    Module(usize),
    /// An item defined in this module.
    Item(usize),
}

type Reader<'a> = dyn Fn(&str) -> Option<String> + 'a;

/// `dir/name`, or `name` in the top directory.
fn join(dir: &str, name: &str) -> String {
    match (dir.is_empty(), name.is_empty()) {
        (true, _) => name.to_string(),
        (_, true) => dir.to_string(),
        _ => format!("{dir}/{name}"),
    }
}

impl Tree {
    fn load(read: &Reader, crates: &[(&str, &str, &[&str])]) -> Result<Tree, String> {
        let mut tree = Tree::default();
        for (k, (name, root, externs)) in crates.iter().enumerate() {
            let m = tree.load_file(read, k, root, Vec::new(), None, true)?;
            tree.crates.push(Crate {
                name: name.to_string(),
                root: m,
                externs: externs.iter().map(|s| s.to_string()).collect(),
            });
        }
        Ok(tree)
    }

    fn load_file(
        &mut self,
        read: &Reader,
        krate: usize,
        rel: &str,
        path: Vec<String>,
        parent: Option<usize>,
        mod_rs: bool,
    ) -> Result<usize, String> {
        let src = read(rel).ok_or_else(|| format!("cannot read {rel}"))?;
        let parsed = parse(&src);
        let file = self.files.len();
        self.files.push(SrcFile {
            rel: rel.to_string(),
            module: self.modules.len(),
            refs: Vec::new(),
        });
        // Directory that `mod x;` of this file's own module is relative to.
        let dir = match rel.rfind('/') {
            Some(p) => &rel[..p],
            None => "",
        };
        let child_dir = if mod_rs {
            dir.to_string()
        } else {
            rel.trim_end_matches(".rs").to_string()
        };
        let mut ids = Vec::new();
        for lm in &parsed.mods {
            let mut p = path.clone();
            p.extend(lm.inline.iter().cloned());
            ids.push(self.modules.len());
            self.modules.push(Module {
                krate,
                path: p,
                file,
                parent: None,
                children: BTreeMap::new(),
                items: lm.items.clone(),
                imports: lm.imports.clone(),
            });
        }
        self.modules[ids[0]].parent = parent;
        for (l, lm) in parsed.mods.iter().enumerate() {
            for (name, child) in &lm.inline_children {
                self.modules[ids[*child]].parent = Some(ids[l]);
                self.modules[ids[l]]
                    .children
                    .insert(name.clone(), ids[*child]);
            }
        }
        for (l, lm) in parsed.mods.iter().enumerate() {
            let base = join(&child_dir, &lm.inline.join("/"));
            for (name, attr) in &lm.file_children {
                let candidates = match attr {
                    Some(p) if lm.inline.is_empty() => vec![(join(dir, p), false)],
                    Some(p) => vec![(join(&base, p), false)],
                    None => vec![
                        (join(&base, &format!("{name}.rs")), false),
                        (join(&base, &format!("{name}/mod.rs")), true),
                    ],
                };
                let (child_rel, child_mod_rs) = candidates
                    .iter()
                    .find(|(c, _)| read(c).is_some())
                    .cloned()
                    .ok_or_else(|| format!("{rel}: mod {name}: none of {candidates:?} exists"))?;
                let mut p = self.modules[ids[l]].path.clone();
                p.push(name.clone());
                let m = self.load_file(read, krate, &child_rel, p, Some(ids[l]), child_mod_rs)?;
                self.modules[ids[l]].children.insert(name.clone(), m);
            }
        }
        self.files[file].refs = parsed
            .refs
            .into_iter()
            .map(|r| (ids[r.local], r.path, r.line))
            .collect();
        Ok(ids[0])
    }

    fn extern_crate(&self, m: usize, name: &str) -> Option<usize> {
        let k = &self.crates[self.modules[m].krate];
        k.externs.iter().any(|e| e == name).then(|| {
            let c = self.crates.iter().find(|c| c.name == name)?;
            Some(c.root)
        })?
    }

    fn crate_root(&self, m: usize) -> usize {
        let mut m = m;
        while let Some(p) = self.modules[m].parent {
            m = p;
        }
        m
    }

    /// The name `name` as seen inside module `m`.
    fn lookup(&self, m: usize, name: &str, depth: usize) -> Option<Target> {
        if depth > 16 {
            return None;
        }
        let md = &self.modules[m];
        if let Some(&c) = md.children.get(name) {
            return Some(Target::Module(c));
        }
        if md.items.contains(name) {
            return Some(Target::Item(m));
        }
        for imp in &md.imports {
            if imp.alias.as_deref() == Some(name) {
                return self.resolve(m, &imp.path, depth + 1);
            }
        }
        for imp in md.imports.iter().filter(|i| i.alias.is_none()) {
            if let Some(Target::Module(g)) = self.resolve(m, &imp.path, depth + 1) {
                if g != m {
                    if let Some(t) = self.lookup(g, name, depth + 1) {
                        return Some(t);
                    }
                }
            }
        }
        None
    }

    /// What `path`, written in module `m`, names; `None` for anything
    /// outside our crates (std, libc, a local variable's type, ...).
    fn resolve(&self, m: usize, path: &[String], depth: usize) -> Option<Target> {
        let (first, rest) = path.split_first()?;
        let mut cur = match first.as_str() {
            "::" => {
                let (name, rest2) = rest.split_first()?;
                return self.resolve_from(self.extern_crate(m, name)?, rest2, depth);
            }
            "crate" => Target::Module(self.crate_root(m)),
            "self" => Target::Module(m),
            "super" => Target::Module(self.modules[m].parent?),
            name => match self.lookup(m, name, depth) {
                Some(t) => t,
                None => Target::Module(self.extern_crate(m, name)?),
            },
        };
        for seg in rest {
            cur = match cur {
                Target::Module(c) => match seg.as_str() {
                    "super" => Target::Module(self.modules[c].parent?),
                    "self" => cur,
                    // Not found: something the parser does not see (a
                    // macro-made item); count it as the module's.
                    s => self.lookup(c, s, depth + 1).unwrap_or(Target::Item(c)),
                },
                Target::Item(_) => return Some(cur),
            };
        }
        Some(cur)
    }

    fn resolve_from(&self, root: usize, rest: &[String], depth: usize) -> Option<Target> {
        if rest.is_empty() {
            return Some(Target::Module(root));
        }
        let mut p = vec!["self".to_string()];
        p.extend(rest.iter().cloned());
        self.resolve(root, &p, depth)
    }

    /// `crate::a::b`: the path of the module of the file that holds `m`,
    /// for the layers.
    fn key(&self, m: usize) -> String {
        let md = &self.modules[self.files[self.modules[m].file].module];
        let mut k = self.crates[md.krate].name.clone();
        for seg in &md.path {
            k.push_str("::");
            k.push_str(seg);
        }
        k
    }

    fn is_within(&self, m: usize, ancestor: usize) -> bool {
        let mut cur = Some(m);
        while let Some(c) = cur {
            if c == ancestor {
                return true;
            }
            cur = self.modules[c].parent;
        }
        false
    }

    fn graph(&self) -> Graph {
        let mut g = Graph::default();
        for f in &self.files {
            g.nodes.push(Node {
                file: f.rel.clone(),
                key: self.key(f.module),
            });
        }
        let add = |g: &mut Graph, from_mod: usize, path: &[String], line: usize, glob: bool| {
            let Some(t) = self.resolve(from_mod, path, 0) else {
                return;
            };
            let (target_mod, file_dep) = match t {
                Target::Module(x) => (x, glob),
                Target::Item(x) => (x, true),
            };
            let from = self.modules[from_mod].file;
            let to = self.modules[target_mod].file;
            g.edges.push(Edge {
                from,
                line,
                to_key: self.key(target_mod),
                to_file: (file_dep && to != from).then_some(to),
                what: path.join("::"),
            });
        };
        for (m, md) in self.modules.iter().enumerate() {
            for imp in &md.imports {
                if imp.public {
                    if let Some(Target::Module(x) | Target::Item(x)) = self.resolve(m, &imp.path, 0)
                    {
                        if self.is_within(x, m) {
                            continue; // a facade re-exporting its own descendants
                        }
                    }
                }
                add(&mut g, m, &imp.path, imp.line, imp.alias.is_none());
            }
        }
        for f in &self.files {
            for (m, path, line) in &f.refs {
                add(&mut g, *m, path, *line, false);
            }
        }
        g
    }
}

// ---------------------------------------------------------------------------
// The checker must be able to fail.

#[cfg(test)]
mod self_test {
    use super::*;

    fn fake(files: &[(&str, &str)]) -> Graph {
        let map: HashMap<String, String> = files
            .iter()
            .map(|(p, s)| (p.to_string(), s.to_string()))
            .collect();
        let read = |rel: &str| map.get(rel).cloned();
        Tree::load(&read, &[("fake", "lib.rs", &[])])
            .expect("fake tree")
            .graph()
    }

    const FAKE_LAYERS: &[(&str, &[&str])] = &[
        ("bottom", &["fake", "fake::low", "fake::a", "fake::b"]),
        ("top", &["fake::high"]),
    ];

    #[test]
    fn reports_an_upward_import_and_a_circle() {
        let g = fake(&[
            ("lib.rs", "mod low; mod high; mod a; mod b;"),
            // upward: low (bottom) uses high (top)
            ("low.rs", "use crate::high::H;\npub struct L;"),
            ("high.rs", "pub struct H;"),
            // a circle: a -> b (use) -> a (path in code)
            ("a.rs", "use super::b::B;\npub struct A;"),
            ("b.rs", "pub struct B;\nfn f() {\n  crate::a::A;\n}"),
        ]);
        let p = check(&g, FAKE_LAYERS, &[]);
        assert!(
            p.iter()
                .any(|l| l.starts_with("upward: low.rs:1 (fake::low")),
            "{p:#?}"
        );
        assert!(
            p.iter()
                .any(|l| l.starts_with("circle of imports between a.rs, b.rs")
                    && l.contains("b.rs:3 uses crate::a::A")),
            "{p:#?}"
        );
        assert_eq!(p.len(), 2, "{p:#?}");
    }

    #[test]
    fn an_allowed_circle_is_skipped_and_a_stale_entry_is_reported() {
        let g = fake(&[
            ("lib.rs", "mod a; mod b;"),
            ("a.rs", "use super::b::B;\npub struct A;"),
            ("b.rs", "use crate::a::A;\npub struct B;"),
        ]);
        assert!(check(&g, FAKE_LAYERS, &[&["a.rs", "b.rs"]]).is_empty());
        let p = check(&g, FAKE_LAYERS, &[&["a.rs", "b.rs"], &["a.rs", "low.rs"]]);
        assert_eq!(p.len(), 1, "{p:#?}");
        assert!(p[0].contains("no longer a circle"), "{p:#?}");
    }

    #[test]
    fn a_use_between_modules_kept_apart_is_reported() {
        let g = fake(&[
            ("lib.rs", "mod high; mod low;"),
            ("high.rs", "fn f() { crate::low::g(); }"),
            ("low.rs", "pub fn g() {}"),
        ]);
        assert!(check(&g, FAKE_LAYERS, &[]).is_empty());
        let p = apart(&g, &[("fake::high", "fake::low")]);
        assert_eq!(p.len(), 1, "{p:#?}");
        assert!(
            p[0].starts_with("apart: high.rs:1 (fake::high) uses crate::low::g"),
            "{p:#?}"
        );
        assert!(apart(&g, &[("fake::low", "fake::high")]).is_empty());
    }

    #[test]
    fn a_module_without_a_layer_is_reported() {
        let g = fake(&[("lib.rs", "mod stray;"), ("stray.rs", "")]);
        let p = check(&g, FAKE_LAYERS, &[]);
        assert_eq!(p, vec!["module fake::stray has no layer: add it to LAYERS"]);
    }

    #[test]
    fn facades_comments_strings_and_paths_attributes() {
        let g = fake(&[
            // A facade re-exporting its child is not a dependency; `#[path]`
            // is followed; comments and strings are not code.
            (
                "lib.rs",
                "pub mod a;\n#[path = \"bee.rs\"]\nmod b;\npub use a::A;",
            ),
            (
                "a.rs",
                "// crate::b::B\n/* crate::b::B */ const S: &str = \"crate::b::B\";\n\
                 const R: &str = r#\"crate::b::B\"#; const Y: &[u8] = b\"crate::b::B\"; const C: char = '\"';\npub struct A;",
            ),
            ("bee.rs", "fn f() -> crate::A { todo!() }"),
        ]);
        let p = check(&g, FAKE_LAYERS, &[]);
        assert!(p.is_empty(), "{p:#?}");
        let b = g
            .nodes
            .iter()
            .position(|n| n.file == "bee.rs")
            .expect("bee");
        let a = g.nodes.iter().position(|n| n.file == "a.rs").expect("a");
        // bee.rs uses A through the root's re-export: the edge goes to a.rs.
        assert!(
            g.edges.iter().any(|e| e.from == b && e.to_file == Some(a)),
            "{:#?}",
            g.edges
        );
        assert!(g.edges.iter().all(|e| e.from != a), "{:#?}", g.edges);
    }
}
