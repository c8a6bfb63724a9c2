//! [`Params`]: `;name[=value]` parameter lists of URIs and header values (Via,
//! From/To/Contact, Content-Type), iterated lazily from the raw text.

use super::error::ParseError;
use super::syntax::{is_escaped_class, is_token, is_token_char, quoted_end, trim_lws, CLASS_PARAM};

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

    /// Header parameters: `token [ = ( token / host / quoted-string ) ]`.
    pub(crate) fn check_header(&self) -> Result<(), ParseError> {
        self.check_header_with(|_| Ok(()))
    }

    /// Like `check_header`, calling `each` on every (valid) parameter, so that
    /// callers validate and pick values in the same pass.
    pub(crate) fn check_header_with(
        &self,
        mut each: impl FnMut(Param<'a>) -> Result<(), ParseError>,
    ) -> Result<(), ParseError> {
        for p in self.iter() {
            if !is_token(p.name) {
                return Err(ParseError::header(if p.name.is_empty() {
                    "empty parameter"
                } else {
                    "invalid parameter name"
                }));
            }
            if let Some(v) = p.value {
                let ok = if v.starts_with('"') {
                    quoted_end(v.as_bytes(), 0) == Some(v.len())
                } else {
                    !v.is_empty()
                        && v.bytes()
                            .all(|b| is_token_char(b) || matches!(b, b'[' | b']' | b':'))
                };
                if !ok {
                    return Err(ParseError::header("invalid parameter value"));
                }
            }
            each(p)?;
        }
        Ok(())
    }

    /// URI parameters: `1*paramchar [ = 1*paramchar ]`.
    pub(crate) fn check_uri(&self) -> Result<(), ParseError> {
        for p in self.iter() {
            let ok = !p.name.is_empty()
                && is_escaped_class(p.name, CLASS_PARAM)
                && p.value
                    .is_none_or(|v| !v.is_empty() && is_escaped_class(v, CLASS_PARAM));
            if !ok {
                return Err(ParseError::header(if p.name.is_empty() {
                    "empty URI parameter"
                } else {
                    "invalid URI parameter"
                }));
            }
        }
        Ok(())
    }
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
    fn strictness() {
        assert!(Params::new(";;").check_header().is_err());
        assert!(Params::new(";a=").check_header().is_err());
        assert!(Params::new(";a=\"x").check_header().is_err());
        assert!(Params::new(";a b=c").check_header().is_err());
        assert!(Params::new(";received=[2001:db8::1]").check_header().is_ok());
        assert!(Params::new(";%6C%72;n%61me=v%61lue%25%34%31").check_uri().is_ok());
        assert!(Params::new(";a=<b>").check_uri().is_err());
        assert!(Params::new(";").check_uri().is_err());
    }
}
