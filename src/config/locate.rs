//! Where things are in a TOML source: a tree of key and value spans for one file,
//! used to turn a byte offset (from a toml error) into a dotted key path and a
//! dotted key path (from a validation error) into a line number.
//!
//! The tree is read through serde with toml's span protocol (the one `toml::Spanned`
//! uses), requested for every key and value, so it needs no other TOML parser.
//! Where toml offers no span (a datetime's inner value) the node simply has none.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::ConfigError;

/// toml's private protocol for `Spanned<T>` (serde_spanned 0.6): a struct with this
/// name and these fields is answered with a map `{start, end, value}`.
const SPANNED_NAME: &str = "$__serde_spanned_private_Spanned";
const SPANNED_START: &str = "$__serde_spanned_private_start";
const SPANNED_END: &str = "$__serde_spanned_private_end";
const SPANNED_VALUE: &str = "$__serde_spanned_private_value";
const SPANNED_FIELDS: &[&str] = &[SPANNED_START, SPANNED_END, SPANNED_VALUE];

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// Parses `proxy.user_backends[0].url` (keys may be quoted: `headers."X.Y"`).
pub(crate) fn parse_path(path: &str) -> Vec<Seg> {
    let mut segs = Vec::new();
    let mut chars = path.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            '.' => {
                chars.next();
            }
            '[' => {
                chars.next();
                let digits: String = chars.by_ref().take_while(|&c| c != ']').collect();
                segs.push(Seg::Index(digits.trim().parse().unwrap_or(0)));
            }
            '"' => {
                chars.next();
                let mut key = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => key.extend(chars.next()),
                        c => key.push(c),
                    }
                }
                segs.push(Seg::Key(key));
            }
            _ => {
                let mut key = String::new();
                while let Some(&c) = chars.peek() {
                    if c == '.' || c == '[' {
                        break;
                    }
                    key.push(c);
                    chars.next();
                }
                segs.push(Seg::Key(key));
            }
        }
    }
    segs
}

/// Formats a path the way `parse_path` reads it; keys that are not bare TOML keys
/// are quoted.
pub(crate) fn format_path(segs: &[Seg]) -> String {
    let mut out = String::new();
    for seg in segs {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                let bare = !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                if bare {
                    out.push_str(k);
                } else {
                    out.push('"');
                    for c in k.chars() {
                        if c == '"' || c == '\\' {
                            out.push('\\');
                        }
                        out.push(c);
                    }
                    out.push('"');
                }
            }
            Seg::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }
    out
}

#[derive(Debug)]
struct Key {
    name: String,
    span: Option<Range<usize>>,
}

#[derive(Debug)]
struct Node {
    span: Option<Range<usize>>,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Table(Vec<(Key, Node)>),
    Array(Vec<Node>),
    Scalar,
}

impl Node {
    fn scalar() -> Node {
        Node {
            span: None,
            kind: Kind::Scalar,
        }
    }
}

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_str<E>(self, s: &str) -> Result<Key, E> {
                Ok(Key {
                    name: s.to_owned(),
                    span: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Key, A::Error> {
                let (mut start, mut end, mut name) = (None, None, None);
                while let Some(k) = m.next_key::<String>()? {
                    match k.as_str() {
                        SPANNED_START => start = Some(m.next_value::<usize>()?),
                        SPANNED_END => end = Some(m.next_value::<usize>()?),
                        SPANNED_VALUE => name = Some(m.next_value::<String>()?),
                        _ => {
                            m.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                let name = name.ok_or_else(|| de::Error::custom("key without a name"))?;
                Ok(Key {
                    name,
                    span: start.zip(end).map(|(s, e)| s..e),
                })
            }
        }
        d.deserialize_struct(SPANNED_NAME, SPANNED_FIELDS, KeyVisitor)
    }
}

/// Reads a node; `spanned` asks the deserializer for the span first (the span
/// protocol then hands over the plain value, read with `spanned = false`).
struct NodeSeed {
    spanned: bool,
}

impl<'de> DeserializeSeed<'de> for NodeSeed {
    type Value = Node;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        if self.spanned {
            d.deserialize_struct(SPANNED_NAME, SPANNED_FIELDS, NodeVisitor)
        } else {
            d.deserialize_any(NodeVisitor)
        }
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any TOML value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Node, E> {
        Ok(Node::scalar())
    }
    fn visit_i64<E>(self, _: i64) -> Result<Node, E> {
        Ok(Node::scalar())
    }
    fn visit_u64<E>(self, _: u64) -> Result<Node, E> {
        Ok(Node::scalar())
    }
    fn visit_f64<E>(self, _: f64) -> Result<Node, E> {
        Ok(Node::scalar())
    }
    fn visit_str<E>(self, _: &str) -> Result<Node, E> {
        Ok(Node::scalar())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = m.next_key::<Key>()? {
            if entries.is_empty() && key.span.is_none() && key.name == SPANNED_START {
                // The span protocol: {start, end, value}.
                let start = m.next_value::<usize>()?;
                let (mut end, mut inner) = (None, None);
                while let Some(k) = m.next_key::<String>()? {
                    match k.as_str() {
                        SPANNED_END => end = Some(m.next_value::<usize>()?),
                        SPANNED_VALUE => {
                            inner = Some(m.next_value_seed(NodeSeed { spanned: false })?);
                        }
                        _ => {
                            m.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                let mut node = inner.unwrap_or_else(Node::scalar);
                node.span = end.map(|end| start..end);
                return Ok(node);
            }
            let value = m.next_value_seed(NodeSeed { spanned: true })?;
            entries.push((key, value));
        }
        Ok(Node {
            span: None,
            kind: Kind::Table(entries),
        })
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = s.next_element_seed(NodeSeed { spanned: true })? {
            items.push(item);
        }
        Ok(Node {
            span: None,
            kind: Kind::Array(items),
        })
    }
}

/// One TOML file as read: its name (as given), its text and where each key is.
#[derive(Clone)]
pub(crate) struct SourceDoc {
    pub(crate) file: PathBuf,
    text: std::sync::Arc<str>,
    root: std::sync::Arc<Node>,
}

impl fmt::Debug for SourceDoc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceDoc")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl SourceDoc {
    /// Parses the text as TOML; a syntax error becomes a located `ConfigError`.
    pub(crate) fn parse(file: &Path, text: &str) -> Result<SourceDoc, ConfigError> {
        let root = toml::from_str::<Node>(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            ConfigError::new(file, line, "", one_line(e.message()))
        })?;
        Ok(SourceDoc {
            file: file.to_path_buf(),
            text: text.into(),
            root: std::sync::Arc::new(root),
        })
    }

    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    pub(crate) fn line_of_offset(&self, offset: usize) -> usize {
        line_of(&self.text, offset)
    }

    /// The key path of the innermost key or value whose span holds `offset`.
    pub(crate) fn path_at(&self, offset: usize) -> Vec<Seg> {
        let mut best: Option<(usize, Vec<Seg>)> = None;
        let mut path = Vec::new();
        walk(&self.root, &mut path, offset, &mut best);
        best.map(|(_, p)| p).unwrap_or_default()
    }

    /// How much of `segs` exists in this file, and the line of the deepest part
    /// that does (the key's line for a table entry, the value's for an element).
    pub(crate) fn find(&self, segs: &[Seg]) -> (usize, Option<usize>) {
        let mut node = &*self.root;
        let mut line = None;
        for (depth, seg) in segs.iter().enumerate() {
            let next = match (&node.kind, seg) {
                (Kind::Table(entries), Seg::Key(k)) => entries
                    .iter()
                    .rev()
                    .find(|(key, _)| &key.name == k)
                    .map(|(key, value)| (key.span.as_ref().or(value.span.as_ref()), value)),
                (Kind::Array(items), Seg::Index(i)) => {
                    items.get(*i).map(|item| (item.span.as_ref(), item))
                }
                _ => None,
            };
            match next {
                Some((span, child)) => {
                    if let Some(span) = span {
                        line = Some(line_of(&self.text, span.start));
                    }
                    node = child;
                }
                None => return (depth, line),
            }
        }
        (segs.len(), line)
    }
}

fn walk(node: &Node, path: &mut Vec<Seg>, offset: usize, best: &mut Option<(usize, Vec<Seg>)>) {
    match &node.kind {
        Kind::Table(entries) => {
            for (key, value) in entries {
                path.push(Seg::Key(key.name.clone()));
                consider(&value.span, path, offset, best);
                consider(&key.span, path, offset, best);
                walk(value, path, offset, best);
                path.pop();
            }
        }
        Kind::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(Seg::Index(i));
                consider(&item.span, path, offset, best);
                walk(item, path, offset, best);
                path.pop();
            }
        }
        Kind::Scalar => {}
    }
}

/// Keeps `path` as the best match when `span` holds `offset` and is no wider than
/// the best so far (later, i.e. deeper or key, spans win ties).
fn consider(
    span: &Option<Range<usize>>,
    path: &[Seg],
    offset: usize,
    best: &mut Option<(usize, Vec<Seg>)>,
) {
    if let Some(span) = span {
        let holds = span.contains(&offset) || (span.is_empty() && span.start == offset);
        if holds && best.as_ref().is_none_or(|(l, _)| span.len() <= *l) {
            *best = Some((span.len(), path.to_vec()));
        }
    }
}

impl<'de> de::Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        NodeSeed { spanned: false }.deserialize(d)
    }
}

/// 1-based line of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    1 + text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// Joins a possibly multi-line message into one line.
pub(crate) fn one_line(msg: &str) -> String {
    msg.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"top = 1
when = 1979-05-27
a.b.c = "x"
[proxy]
udp_port = 5060
inl = { q = 1, "r.s" = [1, { z = 2 }] }
arr = [
  "a",
  "b",
]
[proxy.sub]
k = 1
[[x]]
u = 1
[[x]]
u = 2
"#;

    fn doc() -> SourceDoc {
        SourceDoc::parse(Path::new("t.toml"), DOC).unwrap()
    }

    fn path(p: &str) -> Vec<Seg> {
        parse_path(p)
    }

    #[test]
    fn finds_lines_of_paths() {
        let d = doc();
        assert_eq!(d.find(&path("top")), (1, Some(1)));
        assert_eq!(d.find(&path("a.b.c")), (3, Some(3)));
        assert_eq!(d.find(&path("proxy")), (1, Some(4)));
        assert_eq!(d.find(&path("proxy.udp_port")), (2, Some(5)));
        assert_eq!(d.find(&path("proxy.inl.\"r.s\"[1].z")), (5, Some(6)));
        assert_eq!(d.find(&path("proxy.arr[1]")), (3, Some(9)));
        assert_eq!(d.find(&path("proxy.sub.k")), (3, Some(12)));
        assert_eq!(d.find(&path("x[1].u")), (3, Some(16)));
        // Missing tail: depth reached and the line of the deepest existing part.
        assert_eq!(d.find(&path("proxy.nope")), (1, Some(4)));
        assert_eq!(d.find(&path("x[7].u")), (1, Some(13)));
        assert_eq!(d.find(&path("nothing.here")), (0, None));
    }

    #[test]
    fn maps_offsets_to_paths() {
        let d = doc();
        let at = |needle: &str| {
            let off = DOC.find(needle).unwrap();
            format_path(&d.path_at(off))
        };
        assert_eq!(at("udp_port"), "proxy.udp_port");
        assert_eq!(at("5060"), "proxy.udp_port");
        assert_eq!(at("z = 2"), "proxy.inl.\"r.s\"[1].z");
        assert_eq!(at("\"b\""), "proxy.arr[1]");
        assert_eq!(at("u = 2"), "x[1].u");
        assert_eq!(at("1979"), "when");
    }

    #[test]
    fn paths_round_trip() {
        for p in ["a", "a.b[3].c", "h.\"X.Y\"", "q.\"we\\\"ird\""] {
            assert_eq!(format_path(&parse_path(p)), p);
        }
    }

    #[test]
    fn syntax_errors_are_located() {
        let e = SourceDoc::parse(Path::new("s.toml"), "a = 1\nb = = 2\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(!e.to_string().contains('\n'));
    }
}
