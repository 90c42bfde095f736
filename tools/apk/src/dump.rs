//! The text form of an ADB file, in the shape `apk adbdump` prints it: a
//! YAML-like tree of the ADB block (arrays as `key: # N items` with `- `
//! items, strings quoted or block-quoted by the same rules), then one
//! comment line per signature and data block.

use p256::PublicKey;

use crate::error::{Error, Result};
use crate::reader::{Block, Container, Db};
use crate::schema::{self, Kind, Schema};
use crate::sign;
use crate::wire::NULL;

/// Bounds on what one dump may produce: a small file can name one large
/// object many times.
const MAX_NODES: usize = 1 << 22;
const MAX_OUTPUT: usize = 256 << 20;

/// Dumps a parsed file. A signature line ends in `OK` when one of `keys`
/// verifies it, else in `UNTRUSTED signature` (as apk prints it with no
/// trusted keys).
pub fn dump(c: &Container<'_>, keys: &[PublicKey]) -> Result<Vec<u8>> {
    let root = schema::root(c.schema).ok_or(Error::Schema {
        expected: None,
        found: c.schema,
    })?;
    let mut p = Printer {
        db: c.db,
        out: Vec::new(),
        nodes: 0,
    };
    p.put(format!("#%SCHEMA: {:08X}\n", c.schema).as_bytes())?;
    p.put(
        format!(
            "# ADB block, size: {}, compat: {}, ver: {}\n",
            c.db.buf.len(),
            c.db.compat_version(),
            c.db.version()
        )
        .as_bytes(),
    )?;
    if c.db.root() != NULL {
        p.object(root, c.db.root(), 0, None)?;
    }
    for b in &c.blocks {
        match b {
            Block::Sig(s) => {
                if s.len() < 2 {
                    return Err(Error::Truncated("signature block"));
                }
                let mut line = format!("# sig v{:02x} h{:02x} ", s[0], s[1]);
                // apk's 160-byte line buffer: hex while more than 40 left
                let shown = s.len().saturating_sub(2).min(54);
                for x in &s[2..2 + shown] {
                    line.push_str(&format!("{x:02x}"));
                }
                if shown == 54 {
                    line.push_str("..");
                }
                let ok = keys
                    .iter()
                    .any(|k| sign::verify(k, c.schema, c.db.buf, s).is_ok());
                line.push_str(if ok {
                    ": OK\n"
                } else {
                    ": UNTRUSTED signature\n"
                });
                p.put(line.as_bytes())?;
            }
            Block::Data { content, .. } => {
                let n = content.len() + crate::wire::DATA_HEADER_LEN;
                p.put(format!("# data block, size: {n}\n").as_bytes())?;
            }
        }
    }
    Ok(p.out)
}

struct Printer<'a> {
    db: Db<'a>,
    out: Vec<u8>,
    nodes: usize,
}

enum Quote {
    None,
    Single,
    Block,
}

fn quoting(s: &[u8], multiline: bool) -> Quote {
    if s.is_empty() {
        return Quote::None;
    }
    if s.len() >= 80 || multiline {
        return Quote::Block;
    }
    let mut q = if b"-?:,[]{}#&*!|>'\"%@`".contains(&s[0]) {
        Quote::Single
    } else {
        Quote::None
    };
    let mut prev = 0u8;
    for &c in s {
        match c {
            b'\r' | b'\n' | b'\'' => return Quote::Block,
            b' ' if prev == b':' => q = Quote::Single,
            b'#' if prev == b' ' => return Quote::Block,
            b'#' => q = Quote::Single,
            _ => {}
        }
        prev = c;
    }
    q
}

fn indent(depth: usize) -> Vec<u8> {
    vec![b' '; 2 * depth]
}

fn hex(b: &[u8]) -> Vec<u8> {
    b.iter()
        .flat_map(|x| format!("{x:02x}").into_bytes())
        .collect()
}

impl<'a> Printer<'a> {
    fn put(&mut self, b: &[u8]) -> Result<()> {
        if self.out.len() + b.len() > MAX_OUTPUT {
            return Err(Error::TooLarge("dump output"));
        }
        self.out.extend_from_slice(b);
        Ok(())
    }

    fn node(&mut self) -> Result<()> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(Error::TooLarge("number of values"));
        }
        Ok(())
    }

    /// Prints the set fields of an object, one per line at `depth`; the
    /// first line starts with `first` instead of the indent when given (an
    /// array item's `- `). Returns whether anything was printed.
    fn object(
        &mut self,
        s: &'static Schema,
        v: u32,
        depth: usize,
        mut first: Option<Vec<u8>>,
    ) -> Result<bool> {
        let o = self.db.obj("object", v)?;
        let mut printed = false;
        for i in 1..o.len() {
            let val = o.get(i);
            let Some((name, kind)) = s.field(i) else {
                continue;
            };
            if val == NULL {
                continue;
            }
            let lead = first.take().unwrap_or_else(|| indent(depth));
            self.field(lead, depth, name, kind, val)?;
            printed = true;
        }
        Ok(printed)
    }

    fn field(
        &mut self,
        lead: Vec<u8>,
        depth: usize,
        name: &str,
        kind: &Kind,
        v: u32,
    ) -> Result<()> {
        self.node()?;
        let mut head = lead;
        head.extend_from_slice(name.as_bytes());
        head.push(b':');
        match kind {
            Kind::Obj(s) => {
                head.push(b'\n');
                self.put(&head)?;
                let mark = self.out.len();
                if !self.object(s, v, depth + 1, None)? {
                    self.out.truncate(mark - 1);
                    self.put(b" # empty object\n")?;
                }
            }
            Kind::Arr(item) => self.array(head, depth, item, v)?,
            _ => {
                head.push(b' ');
                self.scalar(head, depth, kind, v)?;
            }
        }
        Ok(())
    }

    fn array(&mut self, mut head: Vec<u8>, depth: usize, item: &Kind, v: u32) -> Result<()> {
        let o = self.db.obj("array", v)?;
        head.extend_from_slice(format!(" # {} items\n", o.len() - 1).as_bytes());
        self.put(&head)?;
        for val in o.items() {
            if val == NULL {
                continue;
            }
            self.node()?;
            let mut lead = indent(depth + 1);
            lead.extend_from_slice(b"- ");
            match item {
                Kind::Obj(s) => {
                    if !self.object(s, val, depth + 2, Some(lead.clone()))? {
                        lead.extend_from_slice(b"# empty object\n");
                        self.put(&lead)?;
                    }
                }
                Kind::Arr(inner) => {
                    lead.pop();
                    self.array(lead, depth + 1, inner, val)?
                }
                _ => self.scalar(lead, depth + 1, item, val)?,
            }
        }
        Ok(())
    }

    fn scalar(&mut self, mut lead: Vec<u8>, depth: usize, kind: &Kind, v: u32) -> Result<()> {
        let (text, multiline) = match kind {
            Kind::Int => (self.db.int("int", v)?.to_string().into_bytes(), None),
            Kind::Oct => {
                let n = self.db.int("mode", v)?;
                let t = if n == 0 {
                    "0".into()
                } else {
                    format!("0{n:o}")
                };
                (t.into_bytes(), None)
            }
            Kind::Str => (self.db.blob("string", v)?.to_vec(), Some(false)),
            Kind::MultiLine => (self.db.blob("script", v)?.to_vec(), Some(true)),
            Kind::Hex => {
                let b = self.db.blob("hash", v)?;
                let t = if b.len() <= 128 {
                    hex(b)
                } else {
                    format!("({} bytes)", b.len()).into_bytes()
                };
                (t, Some(false))
            }
            Kind::Dep => (self.dependency(v)?, Some(false)),
            Kind::Xattr => {
                let b = self.db.blob("xattr", v)?;
                let t = match b.iter().position(|&c| c == 0) {
                    Some(z) => {
                        let mut t = b[..z].to_vec();
                        t.push(b'=');
                        t.extend(hex(&b[z + 1..]));
                        t
                    }
                    None => Vec::new(),
                };
                (t, Some(false))
            }
            Kind::Obj(_) | Kind::Arr(_) => {
                return Err(Error::Type {
                    what: "scalar",
                    tag: v,
                })
            }
        };
        match multiline.map(|m| quoting(&text, m)).unwrap_or(Quote::None) {
            Quote::None => {
                lead.extend_from_slice(&text);
                lead.push(b'\n');
            }
            Quote::Single => {
                lead.push(b'\'');
                lead.extend_from_slice(&text);
                lead.extend_from_slice(b"'\n");
            }
            Quote::Block => {
                lead.extend_from_slice(b"|\n");
                for line in text.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
                    lead.extend(indent(depth + 1));
                    lead.extend_from_slice(line);
                    lead.push(b'\n');
                }
            }
        }
        self.put(&lead)
    }

    /// `name`, `!name`, or `[!]name<op>version`.
    fn dependency(&mut self, v: u32) -> Result<Vec<u8>> {
        let o = self.db.obj("dependency", v)?;
        let name = match o.get(schema::dep::NAME) {
            NULL => return Ok(Vec::new()),
            n => self.db.blob("dependency name", n)?,
        };
        let op = match o.get(schema::dep::MATCH) {
            NULL => crate::version::EQUAL,
            m => self.db.int("dependency match", m)? as u32,
        };
        let mut t = Vec::new();
        if op & crate::version::CONFLICT != 0 {
            t.push(b'!');
        }
        t.extend_from_slice(name);
        if let Some(ver) = match o.get(schema::dep::VERSION) {
            NULL => None,
            x => Some(self.db.blob("dependency version", x)?),
        } {
            t.extend_from_slice(crate::version::op_string(op).as_bytes());
            t.extend_from_slice(ver);
        }
        Ok(t)
    }
}
