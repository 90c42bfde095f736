//! The two schemas TMip writes and reads, `pckg` (a package) and `indx` (a
//! repository index): field numbers, names and kinds as apk-tools 3.0
//! defines them (`src/apk_adb.h`, `src/apk_adb.c`, `doc/apk-package.5.scd`).

/// How a field's value is stored and shown.
#[derive(Debug)]
pub enum Kind {
    /// A string.
    Str,
    /// A string shown as a block (scripts).
    MultiLine,
    /// Bytes shown as hex (hashes).
    Hex,
    /// An integer.
    Int,
    /// An integer shown in octal (modes).
    Oct,
    /// A nested object.
    Obj(&'static Schema),
    /// An array of one kind.
    Arr(&'static Kind),
    /// A dependency object shown as one string (`name`, `name>=1.0`).
    Dep,
    /// An extended attribute (`name\0value`) shown as `name=hex`.
    Xattr,
}

#[derive(Debug)]
pub struct Schema {
    /// `fields[i]` is field number `i + 1`.
    pub fields: &'static [(&'static str, Kind)],
}

impl Schema {
    pub fn field(&self, i: u32) -> Option<&'static (&'static str, Kind)> {
        self.fields.get((i as usize).checked_sub(1)?)
    }

    pub fn index_of(&self, name: &str) -> Option<u32> {
        self.fields
            .iter()
            .position(|(n, _)| *n == name)
            .map(|i| i as u32 + 1)
    }
}

pub mod pkginfo {
    pub const NAME: u32 = 1;
    pub const VERSION: u32 = 2;
    pub const HASHES: u32 = 3;
    pub const DESCRIPTION: u32 = 4;
    pub const ARCH: u32 = 5;
    pub const INSTALLED_SIZE: u32 = 12;
    pub const FILE_SIZE: u32 = 13;
    pub const DEPENDS: u32 = 15;
    pub const MAX: u32 = 21;
}

pub mod dep {
    pub const NAME: u32 = 1;
    pub const VERSION: u32 = 2;
    pub const MATCH: u32 = 3;
}

pub mod acl {
    pub const MODE: u32 = 1;
    pub const USER: u32 = 2;
    pub const GROUP: u32 = 3;
}

pub mod file {
    pub const NAME: u32 = 1;
    pub const ACL: u32 = 2;
    pub const SIZE: u32 = 3;
    pub const MTIME: u32 = 4;
    pub const HASH: u32 = 5;
    pub const TARGET: u32 = 6;
}

pub mod dir {
    pub const NAME: u32 = 1;
    pub const ACL: u32 = 2;
    pub const FILES: u32 = 3;
}

pub mod package {
    pub const INFO: u32 = 1;
    pub const PATHS: u32 = 2;
    pub const SCRIPTS: u32 = 3;
}

pub mod index {
    pub const DESCRIPTION: u32 = 1;
    pub const PACKAGES: u32 = 2;
}

/// Script names, field 1 first.
pub const SCRIPT_NAMES: [&str; 7] = [
    "trigger",
    "pre-install",
    "post-install",
    "pre-deinstall",
    "post-deinstall",
    "pre-upgrade",
    "post-upgrade",
];

static DEPS: Kind = Kind::Dep;
static STRINGS: Kind = Kind::Str;
static XATTRS: Kind = Kind::Xattr;

pub static PKGINFO: Schema = Schema {
    fields: &[
        ("name", Kind::Str),
        ("version", Kind::Str),
        ("hashes", Kind::Hex),
        ("description", Kind::Str),
        ("arch", Kind::Str),
        ("license", Kind::Str),
        ("origin", Kind::Str),
        ("maintainer", Kind::Str),
        ("url", Kind::Str),
        ("repo-commit", Kind::Hex),
        ("build-time", Kind::Int),
        ("installed-size", Kind::Int),
        ("file-size", Kind::Int),
        ("provider-priority", Kind::Int),
        ("depends", Kind::Arr(&DEPS)),
        ("provides", Kind::Arr(&DEPS)),
        ("replaces", Kind::Arr(&DEPS)),
        ("install-if", Kind::Arr(&DEPS)),
        ("recommends", Kind::Arr(&DEPS)),
        ("layer", Kind::Int),
        ("tags", Kind::Arr(&STRINGS)),
    ],
};

pub static ACL: Schema = Schema {
    fields: &[
        ("mode", Kind::Oct),
        ("user", Kind::Str),
        ("group", Kind::Str),
        ("xattrs", Kind::Arr(&XATTRS)),
    ],
};

pub static FILE: Schema = Schema {
    fields: &[
        ("name", Kind::Str),
        ("acl", Kind::Obj(&ACL)),
        ("size", Kind::Int),
        ("mtime", Kind::Int),
        ("hash", Kind::Hex),
        ("target", Kind::Hex),
    ],
};

static FILE_ITEM: Kind = Kind::Obj(&FILE);

pub static DIR: Schema = Schema {
    fields: &[
        ("name", Kind::Str),
        ("acl", Kind::Obj(&ACL)),
        ("files", Kind::Arr(&FILE_ITEM)),
    ],
};

static DIR_ITEM: Kind = Kind::Obj(&DIR);

pub static SCRIPTS: Schema = Schema {
    fields: &[
        ("trigger", Kind::MultiLine),
        ("pre-install", Kind::MultiLine),
        ("post-install", Kind::MultiLine),
        ("pre-deinstall", Kind::MultiLine),
        ("post-deinstall", Kind::MultiLine),
        ("pre-upgrade", Kind::MultiLine),
        ("post-upgrade", Kind::MultiLine),
    ],
};

pub static PACKAGE: Schema = Schema {
    fields: &[
        ("info", Kind::Obj(&PKGINFO)),
        ("paths", Kind::Arr(&DIR_ITEM)),
        ("scripts", Kind::Obj(&SCRIPTS)),
        ("triggers", Kind::Arr(&STRINGS)),
        ("replaces-priority", Kind::Int),
    ],
};

static PKGINFO_ITEM: Kind = Kind::Obj(&PKGINFO);

pub static INDEX: Schema = Schema {
    fields: &[
        ("description", Kind::Str),
        ("packages", Kind::Arr(&PKGINFO_ITEM)),
        ("pkgname-spec", Kind::Str),
    ],
};

/// The root schema of a file schema id.
pub fn root(schema: u32) -> Option<&'static Schema> {
    match schema {
        crate::wire::SCHEMA_PACKAGE => Some(&PACKAGE),
        crate::wire::SCHEMA_INDEX => Some(&INDEX),
        _ => None,
    }
}
