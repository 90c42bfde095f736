//! OpenWrt UCI files (`/etc/config/tmip`), parsed exactly as libuci's
//! `uci/file.c` does (`uci_parse_line`, `parse_str`, `next_arg`), with its
//! strict-mode errors, and written back in `uci commit`'s export format.
//!
//! The parser is a port of file.c's in-place buffer algorithm rather than a
//! tokenizer written from the syntax description, because the C code's
//! corner cases are part of the format: a backslash-newline inside a bare
//! word continues the word only if the next line starts with a non-blank;
//! a `;` glued to an unquoted word ends the line (the rest is dropped), while
//! `'v';` or `v ;` separate commands; an unquoted `#` anywhere in a word cuts
//! the line there; `\n` is just `n`. Everything here mirrors that.
//!
//! Semantics of the resulting package follow list.c: `option` on an existing
//! option replaces it (and moves it to the end, unless the value is
//! unchanged), `list` on a plain option turns it into a list with the old
//! value first, `option x ''` is a no-op while loading, a named section
//! reopened with the same type continues it, with another type is an error.
//! Anonymous sections are named `cfgNNHHHH`: NN the ordinal of the section in
//! the file (every section counts), HHHH the DJB hash of its type (options
//! are not yet known when the name is made). That is what a current router
//! shows, e.g. `system.cfg01e48a`, `firewall.cfg01e63d` (defaults) or
//! `network.cfg030f15` (the first `device` after two named sections). Older
//! libuci releases differed (counting anonymous sections twice: LuCI pages
//! of that era show `system.cfg02e48a`; before that, hashing the options
//! too); scripts should use `@type[N]`, which is stable across all of them.
//!
//! Deviations, on purpose: a NUL byte is an error (C would silently cut the
//! line there), and error line numbers count the last line even when the
//! file does not end in a newline (libuci reports the line before).

use std::fmt;

use super::rc::RcLine;
use super::ConfigError;

/// A parse error with the place it happened, as libuci reports it in strict
/// mode (which fails the whole package).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UciError {
    pub file: String,
    /// 1-based line being read when the error was found.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for UciError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        } else {
            write!(f, "{}: {}", self.file, self.message)
        }
    }
}

impl std::error::Error for UciError {}

impl From<UciError> for ConfigError {
    fn from(e: UciError) -> Self {
        ConfigError::new(&e.file, e.line, e.message)
    }
}

/// The value of an option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Single(String),
    List(Vec<String>),
}

/// One option or list of a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opt {
    pub name: String,
    pub value: Value,
    /// Line of the `option`/`list` keyword that last set it (for a list,
    /// the line of its first item).
    pub line: usize,
    /// The line of each item (one for a plain option), so an error names
    /// the bad entry's line, not the list's first.
    pub item_lines: Vec<usize>,
}

impl Opt {
    /// The items: one for a plain option, every item of a list.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        let s: &[String] = match &self.value {
            Value::Single(v) => std::slice::from_ref(v),
            Value::List(l) => l,
        };
        s.iter().map(String::as_str)
    }
}

/// A `config <type> ['<name>']` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub ty: String,
    pub name: String,
    pub anonymous: bool,
    pub options: Vec<Opt>,
    /// Line of the `config` keyword that opened it.
    pub line: usize,
}

impl Section {
    pub fn option(&self, name: &str) -> Option<&Opt> {
        self.options.iter().find(|o| o.name == name)
    }

    /// A plain option's value (`None` for a list or a missing option).
    pub fn get(&self, name: &str) -> Option<&str> {
        match &self.option(name)?.value {
            Value::Single(v) => Some(v),
            Value::List(_) => None,
        }
    }

    /// `option enabled`, read as `config_get_bool enabled 1` reads it:
    /// missing or unrecognised means enabled.
    pub fn enabled(&self) -> bool {
        self.get("enabled")
            .and_then(super::parse_bool)
            .unwrap_or(true)
    }

    /// The section as `.rc` lines, so the daemons validate UCI and `.rc`
    /// input with one code path: `option addr_pool 'wlan0 * *'` becomes key
    /// `addr_pool`, rest `wlan0 * *`; each list item is its own line; the
    /// line number is the item's. `enabled` belongs to the init script
    /// and is skipped.
    pub fn rc_lines(&self) -> Vec<RcLine<'_>> {
        let mut out = Vec::new();
        for o in &self.options {
            if super::keys::INIT_SCRIPT_KEYS
                .iter()
                .any(|(k, _)| *k == o.name)
            {
                continue;
            }
            for (k, v) in o.values().enumerate() {
                out.push(RcLine {
                    line: o.item_lines.get(k).copied().unwrap_or(o.line),
                    key: &o.name,
                    rest: v.trim(),
                });
            }
        }
        out
    }
}

/// A parsed `/etc/config/<package>` file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Package {
    /// The label given to `parse` (usually the path), used in errors.
    pub file: String,
    pub sections: Vec<Section>,
}

impl Package {
    /// A section by name, or by uci's extended syntax `@type[N]` (N from 0;
    /// negative counts from the end; `@[N]` matches any type), as
    /// `uci_lookup_ext_section` resolves it. `None` when absent or when the
    /// selector is malformed.
    pub fn section(&self, spec: &str) -> Option<&Section> {
        match spec.strip_prefix('@') {
            Some(ext) => self.lookup_ext(ext),
            None => self.sections.iter().find(|s| s.name == spec),
        }
    }

    fn lookup_ext(&self, ext: &str) -> Option<&Section> {
        let open = ext.find('[')?;
        let (ty, rest) = (&ext[..open], &ext[open + 1..]);
        // `]` must be the last character, and the first `]` after `[`.
        let close = rest.find(']')?;
        if close + 1 != rest.len() {
            return None;
        }
        let idx = strtol_whole(&rest[..close])?;
        let ty = if ty.is_empty() {
            None
        } else if validate_type(ty.as_bytes()) {
            Some(ty)
        } else {
            return None;
        };
        let matching = || {
            self.sections
                .iter()
                .filter(move |s| ty.is_none_or(|t| s.ty == t))
        };
        let idx = if idx < 0 {
            idx + matching().count() as i64
        } else {
            idx
        };
        usize::try_from(idx).ok().and_then(|i| matching().nth(i))
    }

    /// Sections of one type, in file order.
    pub fn sections_of_type<'a>(&'a self, ty: &'a str) -> impl Iterator<Item = &'a Section> {
        self.sections.iter().filter(move |s| s.ty == ty)
    }

    /// The file as `uci commit` writes it (`uci_export_package` without the
    /// `package` header): a blank line before each section, names only for
    /// named sections, values single-quoted with `'` written as `'\''`.
    pub fn export(&self) -> String {
        self.export_inner(false)
    }

    /// `uci -n export`: the same, naming anonymous sections too (what
    /// `config_load` in /lib/functions.sh evaluates).
    pub fn export_named(&self) -> String {
        self.export_inner(true)
    }

    fn export_inner(&self, all_names: bool) -> String {
        let mut out = String::new();
        for s in &self.sections {
            out.push_str("\nconfig ");
            out.push_str(&escape(&s.ty));
            if !s.anonymous || all_names {
                out.push_str(" '");
                out.push_str(&escape(&s.name));
                out.push('\'');
            }
            out.push('\n');
            for o in &s.options {
                let kw = match o.value {
                    Value::Single(_) => "option",
                    Value::List(_) => "list",
                };
                for v in o.values() {
                    out.push_str(&format!("\t{kw} {} '{}'\n", escape(&o.name), escape(v)));
                }
            }
        }
        out.push('\n');
        out
    }
}

/// `uci_escape`: a single quote becomes `'\''`.
fn escape(s: &str) -> String {
    s.replace('\'', "'\\''")
}

/// C `strtol(s, &end, 10)` that must consume the whole string; as in libuci
/// an empty index (`@t[]`) is 0.
fn strtol_whole(s: &str) -> Option<i64> {
    let t = s.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == '\x0b');
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        // No digits: strtol leaves `end` at the start, so only "" passes.
        return if s.is_empty() { Some(0) } else { None };
    }
    let v: i64 = digits.parse().ok()?;
    Some(if neg { -v } else { v })
}

/// The default location of the daemons' configuration.
pub const DEFAULT_PATH: &str = "/etc/config/tmip";

/// Read and parse a UCI file (e.g. [`DEFAULT_PATH`]); errors carry the path
/// (line 0 for I/O and encoding errors).
pub fn read(path: &std::path::Path) -> Result<Package, UciError> {
    let label = path.display().to_string();
    let io = |message: String| UciError {
        file: label.clone(),
        line: 0,
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| io(format!("cannot read: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|_| io("not valid UTF-8".into()))?;
    parse(&label, &text)
}

/// Parse the text of a UCI file. `file` labels errors (`/etc/config/tmip`).
pub fn parse(file: &str, text: &str) -> Result<Package, UciError> {
    let mut p = Parser {
        file,
        src: text.as_bytes(),
        src_pos: 0,
        buf: Vec::new(),
        filled: 0,
        pos: 0,
        line: 0,
        pkg: Package {
            file: file.to_string(),
            sections: Vec::new(),
        },
        current: None,
    };
    if let Some(i) = text.bytes().position(|b| b == 0) {
        let line = text.as_bytes()[..i].iter().filter(|&&b| b == b'\n').count() + 1;
        return Err(p.error_at(line, "NUL byte in file"));
    }
    while p.src_pos < p.src.len() {
        p.pos = 0;
        p.getln(0);
        if p.ch(0) != 0 {
            p.parse_line()?;
        }
    }
    Ok(p.pkg)
}

/// The C parser's state: one line buffer parsed in place, `pos` the read
/// position, string arguments compacted towards their start (`target`) and
/// NUL-terminated there. Bytes past the end of `buf` read as NUL.
struct Parser<'a> {
    file: &'a str,
    src: &'a [u8],
    src_pos: usize,
    buf: Vec<u8>,
    /// `pctx->buf_filled`: length of the last line read (for the keyword
    /// skip check).
    filled: usize,
    pos: usize,
    line: usize,
    pkg: Package,
    /// Index of the section options go to.
    current: Option<usize>,
}

type Res<T> = Result<T, UciError>;

/// C `isspace` in the C locale.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// util.c `uci_validate_str`.
fn validate_str(s: &[u8], name: bool, package: bool) -> bool {
    !s.is_empty()
        && s.iter().all(|&c| {
            c.is_ascii_alphanumeric()
                || c == b'_'
                || (c == b'-' && package)
                || (!name && (33..=126).contains(&c))
        })
}

fn validate_type(s: &[u8]) -> bool {
    validate_str(s, false, false)
}

/// list.c `djbhash` over the type, as `uci_fixup_section` uses it.
fn djbhash(s: &str) -> u32 {
    let mut h: u32 = 5381;
    for &b in s.as_bytes() {
        // C adds a (signed on most ABIs) char; bytes >= 0x80 only occur
        // in types that failed validation, so this is never reached with one.
        h = h.wrapping_shl(5).wrapping_add(h).wrapping_add(b as u32);
    }
    h & 0x7fff_ffff
}

impl<'a> Parser<'a> {
    fn error_at(&self, line: usize, msg: &str) -> UciError {
        UciError {
            file: self.file.to_string(),
            line,
            message: msg.to_string(),
        }
    }

    fn error(&self, msg: &str) -> UciError {
        self.error_at(self.line.max(1), msg)
    }

    fn ch(&self, i: usize) -> u8 {
        self.buf.get(i).copied().unwrap_or(0)
    }

    fn cur(&self) -> u8 {
        self.ch(self.pos)
    }

    fn set_nul(&mut self, i: usize) {
        if let Some(b) = self.buf.get_mut(i) {
            *b = 0;
        }
    }

    /// The NUL-terminated string at `i`.
    fn cstr(&self, i: usize) -> &[u8] {
        let tail = self.buf.get(i..).unwrap_or(&[]);
        let end = tail.iter().position(|&b| b == 0).unwrap_or(tail.len());
        &tail[..end]
    }

    fn string_at(&self, i: usize) -> String {
        // Only ASCII bytes are ever dropped from valid UTF-8 input, so this
        // is lossless; lossy conversion just avoids a panic path.
        String::from_utf8_lossy(self.cstr(i)).into_owned()
    }

    /// `uci_getln(ctx, offset)`: read the next line (with its `\n`) into
    /// the buffer at `offset`; at EOF the buffer just ends at `offset`.
    fn getln(&mut self, offset: usize) {
        self.buf.truncate(offset);
        if self.src_pos >= self.src.len() {
            return;
        }
        let rest = &self.src[self.src_pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        self.buf.extend_from_slice(&rest[..n]);
        self.src_pos += n;
        self.filled = self.buf.len();
        self.line += 1;
    }

    /// Returns true if the escaped character is to be taken literally,
    /// false after a line continuation.
    fn parse_backslash(&mut self) -> bool {
        self.pos += 1;
        let c = self.cur();
        if c == 0
            || c == b'\n'
            || (c == b'\r' && self.ch(self.pos + 1) == b'\n' && self.ch(self.pos + 2) == 0)
        {
            self.getln(self.pos);
            return false;
        }
        true
    }

    fn skip_whitespace(&mut self) {
        while self.cur() != 0 && is_space(self.cur()) {
            self.pos += 1;
        }
    }

    fn addc(&mut self, target: &mut usize) {
        let c = self.cur();
        if *target < self.buf.len() {
            self.buf[*target] = c;
        }
        *target += 1;
        self.pos += 1;
    }

    fn parse_quoted(&mut self, target: &mut usize, quote: u8) -> Res<()> {
        self.pos += 1;
        loop {
            match self.cur() {
                c if c == quote => {
                    self.pos += 1;
                    return Ok(());
                }
                0 => {
                    // Multi-line value: the newline was copied already.
                    self.getln(self.pos);
                    if self.cur() == 0 {
                        return Err(self.error(if quote == b'"' {
                            "EOF with unterminated \""
                        } else {
                            "EOF with unterminated '"
                        }));
                    }
                }
                b'\\' if quote == b'"' => {
                    if self.parse_backslash() {
                        self.addc(target);
                    }
                }
                _ => self.addc(target),
            }
        }
    }

    fn parse_str(&mut self, target: &mut usize) -> Res<()> {
        let mut next = true;
        loop {
            match self.cur() {
                b'\'' => self.parse_quoted(target, b'\'')?,
                b'"' => self.parse_quoted(target, b'"')?,
                b'#' => {
                    let p = self.pos;
                    self.set_nul(p);
                    break;
                }
                0 => break,
                b';' => {
                    next = false;
                    break;
                }
                b'\\' => {
                    if self.parse_backslash() {
                        self.addc(target);
                    }
                }
                _ => self.addc(target),
            }
            if self.cur() == 0 || is_space(self.cur()) {
                break;
            }
        }
        if self.cur() != 0 && next {
            self.pos += 1;
        }
        self.set_nul(*target);
        Ok(())
    }

    fn next_arg(&mut self, required: bool, name: bool, package: bool) -> Res<usize> {
        self.skip_whitespace();
        let val = self.pos;
        let mut ptr = self.pos;
        if self.cur() == b';' {
            self.set_nul(val);
            self.pos += 1;
        } else {
            self.parse_str(&mut ptr)?;
        }
        if self.ch(val) == 0 {
            if required {
                return Err(self.error("insufficient arguments"));
            }
            return Ok(val);
        }
        if name && !validate_str(self.cstr(val), name, package) {
            return Err(self.error("invalid character in name field"));
        }
        Ok(val)
    }

    fn assert_eol(&mut self) -> Res<()> {
        self.skip_whitespace();
        let v = self.next_arg(false, false, false)?;
        if self.ch(v) != 0 {
            return Err(self.error("too many arguments"));
        }
        Ok(())
    }

    /// C `strtok(cur_str, " \t")`.
    fn strtok(&mut self) -> Option<usize> {
        let mut s = self.pos;
        while matches!(self.ch(s), b' ' | b'\t') {
            s += 1;
        }
        if self.ch(s) == 0 {
            return None;
        }
        let word = s;
        while !matches!(self.ch(s), 0 | b' ' | b'\t') {
            s += 1;
        }
        self.set_nul(s);
        Some(word)
    }

    /// Skip the keyword (strtok put a NUL after it); `uci_increase_pos`.
    fn skip_keyword(&mut self, err: &str) -> Res<()> {
        let add = self.cstr(self.pos).len() + 1;
        if self.pos + add > self.filled {
            return Err(self.error(err));
        }
        self.pos += add;
        Ok(())
    }

    fn parse_line(&mut self) -> Res<()> {
        self.skip_whitespace();
        loop {
            let Some(word) = self.strtok() else {
                return Ok(());
            };
            let w = self.cstr(word);
            let is = |kw: &[u8]| w.len() == 1 || w == kw;
            match w.first() {
                Some(b'#') => return Ok(()),
                Some(b'p') if is(b"package") => self.parse_package()?,
                Some(b'c') if is(b"config") => self.parse_config()?,
                Some(b'o') if is(b"option") => self.parse_option(false)?,
                Some(b'l') if is(b"list") => self.parse_option(true)?,
                _ => return Err(self.error("invalid command")),
            }
        }
    }

    /// `package <name>` is checked and ignored: the file is one package.
    fn parse_package(&mut self) -> Res<()> {
        self.skip_keyword("package without name")?;
        self.next_arg(true, true, true)?;
        self.assert_eol()
    }

    fn parse_config(&mut self) -> Res<()> {
        let line = self.line;
        self.skip_keyword("config without name")?;
        let ofs_type = self.next_arg(true, false, false)?;
        if !validate_type(self.cstr(ofs_type)) {
            return Err(self.error("invalid character in type field"));
        }
        let ofs_name = self.next_arg(false, true, false)?;
        self.assert_eol()?;
        let ty = self.string_at(ofs_type);
        let name = self.string_at(ofs_name);
        let sections = &mut self.pkg.sections;
        if name.is_empty() {
            let n = sections.len() + 1;
            sections.push(Section {
                name: format!("cfg{:02x}{:04x}", n, djbhash(&ty) % (1 << 16)),
                ty,
                anonymous: true,
                options: Vec::new(),
                line,
            });
            self.current = Some(sections.len() - 1);
        } else if let Some(i) = sections.iter().position(|s| s.name == name) {
            if sections[i].ty != ty {
                return Err(
                    self.error("section of different type overwrites prior section with same name")
                );
            }
            self.current = Some(i);
        } else {
            sections.push(Section {
                ty,
                name,
                anonymous: false,
                options: Vec::new(),
                line,
            });
            self.current = Some(sections.len() - 1);
        }
        Ok(())
    }

    fn parse_option(&mut self, list: bool) -> Res<()> {
        let line = self.line;
        let Some(si) = self.current else {
            return Err(self.error("option/list command found before the first section"));
        };
        self.skip_keyword("option without name")?;
        let ofs_name = self.next_arg(true, true, false)?;
        let ofs_value = self.next_arg(false, false, false)?;
        self.assert_eol()?;
        let name = self.string_at(ofs_name);
        let value = self.string_at(ofs_value);
        let Some(section) = self.pkg.sections.get_mut(si) else {
            return Err(self.error("internal: lost section"));
        };
        let opts = &mut section.options;
        let existing = opts.iter().position(|o| o.name == name);
        if list {
            // uci_add_list
            match existing {
                Some(i) => match &mut opts[i].value {
                    Value::List(items) => {
                        items.push(value);
                        opts[i].item_lines.push(line);
                    }
                    Value::Single(old) => {
                        let old = std::mem::take(old);
                        let first_line = opts[i].line;
                        opts.remove(i);
                        opts.push(Opt {
                            name,
                            value: Value::List(vec![old, value]),
                            line: first_line,
                            item_lines: vec![first_line, line],
                        });
                    }
                },
                None => opts.push(Opt {
                    name,
                    value: Value::List(vec![value]),
                    line,
                    item_lines: vec![line],
                }),
            }
        } else if value.is_empty() {
            // uci_set with an empty value on a pointer the parser filled by
            // hand (not LOOKUP_COMPLETE): nothing happens.
        } else {
            // uci_set: an unchanged plain value stays put; anything else is
            // freed and appended anew.
            if let Some(i) = existing {
                if opts[i].value == Value::Single(value.clone()) {
                    return Ok(());
                }
                opts.remove(i);
            }
            opts.push(Opt {
                name,
                value: Value::Single(value),
                line,
                item_lines: vec![line],
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
