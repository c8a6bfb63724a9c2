//! [`Params`]: `;name[=value]` parameter lists of URIs and header values (Via,
//! From/To/Contact, Content-Type), iterated lazily from the raw text.

use super::error::ParseError;
use super::syntax::{is_lws, is_param_char, is_token_char, quoted_end, trim_lws};

/// A parameter list as written: empty, or starting with `;`.
///
/// Names are compared case-insensitively. Values are returned raw: a quoted value
/// keeps its quotes (see [`unquote`](super::unquote)), a URI parameter keeps its
/// %-escapes (see [`unescape`](super::unescape)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Params<'a> {
    raw: &'a str,
}

/// One parameter: `name` or `name=value`, trimmed of white space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param<'a> {
    /// The name as written.
    pub name: &'a str,
    /// The value as written, `None` for a flag parameter (`;lr`).
    pub value: Option<&'a str>,
}

impl<'a> Params<'a> {
    /// Wraps raw parameter text (empty, or starting with `;`).
    pub(crate) fn new(raw: &'a str) -> Self {
        Params { raw }
    }

    /// The raw text, empty or starting with `;`.
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// No parameter at all.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Iterates the parameters in order.
    pub fn iter(&self) -> ParamIter<'a> {
        ParamIter {
            rest: self.raw.strip_prefix(';'),
        }
    }

    /// The first parameter named `name`: `Some(None)` for a flag, `Some(Some(v))`
    /// with a value, `None` when absent.
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value)
    }

    /// The value of the first parameter named `name`, if it has one.
    pub fn value(&self, name: &str) -> Option<&'a str> {
        self.get(name).flatten()
    }

    /// Whether a parameter named `name` is present (flag or valued).
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Checks that the whole text is valid header parameters.
    pub(crate) fn check_header(&self) -> Result<(), ParseError> {
        let (_, rest) = scan_header_params(self.raw, true, |_| Ok(()))?;
        if rest.is_empty() {
            Ok(())
        } else {
            Err(ParseError::header("invalid parameter"))
        }
    }

    /// URI parameters: `1*paramchar [ = 1*paramchar ]` (paramchar includes
    /// %-escapes), one pass.
    pub(crate) fn check_uri(&self) -> Result<(), ParseError> {
        let b = self.raw.as_bytes();
        let mut i = 0;
        while i < b.len() {
            // b[i] == ';'
            i += 1;
            let name_start = i;
            let mut eq = None;
            while i < b.len() && b[i] != b';' {
                match b[i] {
                    b'=' if eq.is_none() => eq = Some(i),
                    b'%' => {
                        if !(i + 2 < b.len()
                            && b[i + 1].is_ascii_hexdigit()
                            && b[i + 2].is_ascii_hexdigit())
                        {
                            return Err(ParseError::header("invalid URI parameter"));
                        }
                        i += 2;
                    }
                    c if is_param_char(c) => {}
                    _ => return Err(ParseError::header("invalid URI parameter")),
                }
                i += 1;
            }
            let name_end = eq.unwrap_or(i);
            if name_end == name_start || eq.is_some_and(|e| e + 1 == i) {
                return Err(ParseError::header(if name_end == name_start {
                    "empty URI parameter"
                } else {
                    "invalid URI parameter"
                }));
            }
        }
        Ok(())
    }
}

/// Scans `*( SEMI generic-param )` at the start of `s` (white space allowed
/// around `;` and `=`, as in header fields), calling `each` on every parameter.
/// Stops at the end, at a `,` (next list element) or at any other character that
/// cannot continue the parameters; returns the parameters and that rest.
/// `strict` rejects empty names, bad names and bad values; otherwise anything
/// up to the next `;` or `,` is skipped.
pub(crate) fn scan_header_params<'a>(
    s: &'a str,
    strict: bool,
    mut each: impl FnMut(Param<'a>) -> Result<(), ParseError>,
) -> Result<(Params<'a>, &'a str), ParseError> {
    let b = s.as_bytes();
    let mut i = skip_lws(b, 0);
    let start = i;
    let mut end = i;
    while i < b.len() && b[i] == b';' {
        i = skip_lws(b, i + 1);
        let name_start = i;
        while i < b.len() && is_token_char(b[i]) {
            i += 1;
        }
        let name = &s[name_start..i];
        i = skip_lws(b, i);
        let mut value = None;
        if b.get(i) == Some(&b'=') {
            i = skip_lws(b, i + 1);
            let value_start = i;
            if b.get(i) == Some(&b'"') {
                i = quoted_end(b, i).ok_or(ParseError::header("unterminated quoted string"))?;
            } else {
                while i < b.len() && (is_token_char(b[i]) || matches!(b[i], b'[' | b']' | b':')) {
                    i += 1;
                }
            }
            value = Some(&s[value_start..i]);
            i = skip_lws(b, i);
        }
        let bad_end = i < b.len() && b[i] != b';' && b[i] != b',';
        if strict {
            if name.is_empty() {
                return Err(ParseError::header(if bad_end {
                    "invalid parameter name"
                } else {
                    "empty parameter"
                }));
            }
            if value == Some("") {
                return Err(ParseError::header("invalid parameter value"));
            }
        }
        if bad_end {
            if strict {
                return Err(ParseError::header(if value.is_some() {
                    "invalid parameter value"
                } else {
                    "invalid parameter name"
                }));
            }
            while i < b.len() && b[i] != b';' && b[i] != b',' {
                i = if b[i] == b'"' {
                    quoted_end(b, i).unwrap_or(b.len())
                } else {
                    i + 1
                };
            }
        }
        end = trim_end(b, name_start, i);
        each(Param { name, value })?;
    }
    Ok((Params::new(&s[start..end]), &s[i..]))
}

fn skip_lws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_lws(b[i]) {
        i += 1;
    }
    i
}

fn trim_end(b: &[u8], start: usize, mut end: usize) -> usize {
    while end > start && is_lws(b[end - 1]) {
        end -= 1;
    }
    end
}

impl<'a> IntoIterator for Params<'a> {
    type Item = Param<'a>;
    type IntoIter = ParamIter<'a>;

    fn into_iter(self) -> ParamIter<'a> {
        self.iter()
    }
}

/// Iterator over [`Params`].
#[derive(Clone, Debug)]
pub struct ParamIter<'a> {
    rest: Option<&'a str>,
}

impl<'a> Iterator for ParamIter<'a> {
    type Item = Param<'a>;

    fn next(&mut self) -> Option<Param<'a>> {
        let s = self.rest?;
        let b = s.as_bytes();
        let mut i = 0;
        let mut eq = None;
        while i < b.len() {
            match b[i] {
                b'"' => i = quoted_end(b, i).unwrap_or(b.len()),
                b';' => break,
                b'=' if eq.is_none() => {
                    eq = Some(i);
                    i += 1;
                }
                _ => i += 1,
            }
        }
        let end = i.min(b.len());
        self.rest = s.get(end + 1..);
        Some(match eq {
            Some(eq) => Param {
                name: trim_lws(&s[..eq]),
                value: Some(trim_lws(&s[eq + 1..end])),
            },
            None => Param {
                name: trim_lws(&s[..end]),
                value: None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterate_and_lookup() {
        let p = Params::new(";   tag    = 1918181833n ; lr;X=\"a;b\"");
        let v: Vec<_> = p.iter().collect();
        assert_eq!(v.len(), 3);
        assert_eq!(p.value("TAG"), Some("1918181833n"));
        assert_eq!(p.get("lr"), Some(None));
        assert_eq!(p.value("x"), Some("\"a;b\""));
        assert!(p.get("nope").is_none());
        assert!(p.check_header().is_ok());
        assert!(Params::new("").iter().next().is_none());
        assert!(Params::new("").check_header().is_ok());
    }

    #[test]
    fn folded_params() {
        let p = Params::new(";\r\n  tag = 98asjd8");
        assert_eq!(p.value("tag"), Some("98asjd8"));
        let p = Params::new("; newparam =\r\n      newvalue ;\r\n  secondparam ; q = 0.33");
        assert_eq!(p.value("newparam"), Some("newvalue"));
        assert_eq!(p.get("secondparam"), Some(None));
        assert_eq!(p.value("q"), Some("0.33"));
        assert!(p.check_header().is_ok());
    }

    #[test]
    fn scanning_stops_at_list_end() {
        let mut seen = Vec::new();
        let (p, rest) = scan_header_params(" ; a = 1 ;b;c=\"x,y\" , next", true, |p| {
            seen.push((p.name, p.value));
            Ok(())
        })
        .unwrap();
        assert_eq!(p.as_str(), "; a = 1 ;b;c=\"x,y\"");
        assert_eq!(rest, ", next");
        assert_eq!(
            seen,
            [("a", Some("1")), ("b", None), ("c", Some("\"x,y\""))]
        );
        let (p, rest) = scan_header_params(";;,;,,", false, |_| Ok(())).unwrap();
        assert_eq!((p.as_str(), rest), (";;", ",;,,"));
        assert!(scan_header_params(";;,;,,", true, |_| Ok(())).is_err());
        let (p, rest) = scan_header_params(" junk", true, |_| Ok(())).unwrap();
        assert_eq!((p.as_str(), rest), ("", "junk"));
        assert!(scan_header_params(";a=\"open", false, |_| Ok(())).is_err());
    }

    #[test]
    fn strictness() {
        assert!(Params::new(";;").check_header().is_err());
        assert!(Params::new(";a=").check_header().is_err());
        assert!(Params::new(";a=\"x").check_header().is_err());
        assert!(Params::new(";a b=c").check_header().is_err());
        assert!(Params::new(";received=[2001:db8::1]")
            .check_header()
            .is_ok());
        assert!(Params::new(";%6C%72;n%61me=v%61lue%25%34%31")
            .check_uri()
            .is_ok());
        assert!(Params::new(";a=<b>").check_uri().is_err());
        assert!(Params::new(";a=").check_uri().is_err());
        assert!(Params::new(";a=%4").check_uri().is_err());
        assert!(Params::new(";a=%41;b").check_uri().is_ok());
        assert!(Params::new(";").check_uri().is_err());
    }
}
