//! Field selectors (`?fieldSelector=status.phase=Running,spec.nodeName!=n1`), mirroring
//! upstream `k8s.io/apimachinery/pkg/fields`: parsing with backslash escapes in values,
//! matching against an object's selectable fields, and the requirement list a
//! registry checks against the fields it supports.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// The selectable fields of one object (`metadata.name`, `status.phase`, …).
pub type Fields = BTreeMap<String, String>;

/// Why a field selector is invalid; messages are upstream's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldSelectorError {
    /// A term has no `=`, `==` or `!=`.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    Invalid {
        /// The whole selector string.
        selector: String,
        /// The term that could not be split.
        term: String,
    },
    /// A backslash not followed by `\`, `,` or `=` (or at the end of a value).
    #[error("invalid field selector: invalid escape sequence: {0}")]
    InvalidEscapeSequence(String),
    /// A bare `,` or `=` in a value; upstream prints the character's code point.
    #[error("invalid field selector: unescaped character in value: {}", u32::from(*.0))]
    UnescapedRune(char),
}

/// The operator of a field requirement; `==` parses as `Equals`, as upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `field=value` or `field==value`
    Equals,
    /// `field!=value`
    NotEquals,
}

impl Operator {
    /// Upstream's `selection.Operator` string: `"="` or `"!="`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::Equals => "=",
            Operator::NotEquals => "!=",
        }
    }
}

/// One `field op value` term, as upstream's `fields.Requirement`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Requirement {
    /// How the field's value relates to `value`.
    pub operator: Operator,
    /// The field path, e.g. `metadata.name`.
    pub field: String,
    /// The unescaped value.
    pub value: String,
}

impl Requirement {
    /// Whether `fields` satisfy this term. A missing field reads as the empty string,
    /// as upstream's `Set.Get`, so `x=` matches objects without `x`.
    pub fn matches(&self, fields: &Fields) -> bool {
        let have = fields.get(&self.field).map(String::as_str).unwrap_or("");
        match self.operator {
            Operator::Equals => have == self.value,
            Operator::NotEquals => have != self.value,
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}{}",
            self.field,
            self.operator.as_str(),
            escape_value(&self.value)
        )
    }
}

/// A field selector: the AND of its terms; no terms selects everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Selector {
    terms: Vec<Requirement>,
}

impl Selector {
    /// Matches everything, as upstream's `fields.Everything()`.
    pub fn everything() -> Selector {
        Selector::default()
    }

    /// Parses a selector string, as upstream's `fields.ParseSelector`. Terms are sorted
    /// by their raw text and empty terms skipped.
    pub fn parse(selector: &str) -> Result<Selector, FieldSelectorError> {
        let mut parts = split_terms(selector);
        parts.sort_unstable();
        let mut terms = Vec::with_capacity(parts.len());
        for part in parts.into_iter().filter(|p| !p.is_empty()) {
            let (field, operator, raw) =
                split_term(part).ok_or_else(|| FieldSelectorError::Invalid {
                    selector: selector.to_owned(),
                    term: part.to_owned(),
                })?;
            terms.push(Requirement {
                operator,
                field: field.to_owned(),
                value: unescape_value(raw)?,
            });
        }
        Ok(Selector { terms })
    }

    /// Parses, then rewrites every term through `f`, as upstream's
    /// `ParseAndTransformSelector` (used to map field labels between versions).
    pub fn parse_and_transform<E>(
        selector: &str,
        f: impl FnMut(&str, &str) -> Result<(String, String), E>,
    ) -> Result<Selector, E>
    where
        E: From<FieldSelectorError>,
    {
        Selector::parse(selector)?.transform(f)
    }

    /// Returns a copy with every `(field, value)` rewritten by `f`, as upstream's
    /// `Selector.Transform`.
    pub fn transform<E>(
        &self,
        mut f: impl FnMut(&str, &str) -> Result<(String, String), E>,
    ) -> Result<Selector, E> {
        let terms = self
            .terms
            .iter()
            .map(|t| {
                let (field, value) = f(&t.field, &t.value)?;
                Ok(Requirement {
                    operator: t.operator,
                    field,
                    value,
                })
            })
            .collect::<Result<Vec<_>, E>>()?;
        Ok(Selector { terms })
    }

    /// `field=value` for every entry (sorted by field), as upstream's `SelectorFromSet`.
    pub fn from_set(fields: &Fields) -> Selector {
        Selector {
            terms: fields
                .iter()
                .map(|(k, v)| Requirement {
                    operator: Operator::Equals,
                    field: k.clone(),
                    value: v.clone(),
                })
                .collect(),
        }
    }

    /// The single term `field=value`, as upstream's `OneTermEqualSelector`.
    pub fn one_term_equal(field: impl Into<String>, value: impl Into<String>) -> Selector {
        Selector {
            terms: vec![Requirement {
                operator: Operator::Equals,
                field: field.into(),
                value: value.into(),
            }],
        }
    }

    /// The single term `field!=value`, as upstream's `OneTermNotEqualSelector`.
    pub fn one_term_not_equal(field: impl Into<String>, value: impl Into<String>) -> Selector {
        Selector {
            terms: vec![Requirement {
                operator: Operator::NotEquals,
                field: field.into(),
                value: value.into(),
            }],
        }
    }

    /// The AND of several selectors, as upstream's `AndSelectors`.
    pub fn and(selectors: impl IntoIterator<Item = Selector>) -> Selector {
        Selector {
            terms: selectors.into_iter().flat_map(|s| s.terms).collect(),
        }
    }

    /// Whether every term matches `fields`.
    pub fn matches(&self, fields: &Fields) -> bool {
        self.terms.iter().all(|t| t.matches(fields))
    }

    /// Whether the selector has no terms (selects everything).
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The terms, for a registry to reject fields it cannot select on.
    pub fn requirements(&self) -> &[Requirement] {
        &self.terms
    }

    /// The value `field` must equal, if some `=` term pins it (upstream's
    /// `RequiresExactMatch`; `!=` terms never do).
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.operator == Operator::Equals && t.field == field)
            .map(|t| t.value.as_str())
    }
}

impl fmt::Display for Selector {
    /// Upstream's `String()`: terms joined by ",", values re-escaped, `==` shown as `=`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{t}")?;
        }
        Ok(())
    }
}

impl FromStr for Selector {
    type Err = FieldSelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Selector::parse(s)
    }
}

/// Escapes `\`, `,` and `=` with a backslash, as upstream's `EscapeValue`.
pub fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Reverses `escape_value`, as upstream's `UnescapeValue`: other escapes, a trailing
/// backslash, or a bare `,`/`=` are errors.
pub fn unescape_value(s: &str) -> Result<String, FieldSelectorError> {
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(FieldSelectorError::InvalidEscapeSequence(format!("\\{c}")));
            }
            out.push(c);
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => return Err(FieldSelectorError::UnescapedRune(c)),
            c => out.push(c),
        }
    }
    if in_slash {
        return Err(FieldSelectorError::InvalidEscapeSequence("\\".to_owned()));
    }
    Ok(out)
}

/// Splits at commas not preceded by a backslash escape; escapes stay in the terms.
fn split_terms(selector: &str) -> Vec<&str> {
    if selector.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in selector.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&selector[start..i]);
            start = i + 1;
        }
    }
    terms.push(&selector[start..]);
    terms
}

/// Splits a term at the first operator; `!=` and `==` win over `=` at the same spot.
/// The field cannot contain escapes, so the first operator is the split point.
fn split_term(term: &str) -> Option<(&str, Operator, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, operator) in [
            ("!=", Operator::NotEquals),
            ("==", Operator::Equals),
            ("=", Operator::Equals),
        ] {
            if let Some(value) = rest.strip_prefix(op) {
                return Some((&term[..i], operator, value));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn parse(s: &str) -> Selector {
        Selector::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn split_terms_like_upstream() {
        // upstream selector_test.go TestSplitTerms
        let cases: &[(&str, &[&str])] = &[
            ("a", &["a"]),
            ("a=avalue,b=bvalue", &["a=avalue", "b=bvalue"]),
            (
                "a=avalue,b==bvalue,c!=cvalue",
                &["a=avalue", "b==bvalue", "c!=cvalue"],
            ),
            ("", &[]),
            ("a=a,", &["a=a", ""]),
            (",a=a", &["", "a=a"]),
            (r"k=\,,k2=v2", &[r"k=\,", "k2=v2"]),
            (r"k=\\,k2=v2", &[r"k=\\", "k2=v2"]),
            (r"k=\\\,,k2=v2", &[r"k=\\\,", "k2=v2"]),
            (r"k=\a\b\", &[r"k=\a\b\"]),
            (r"k=\", &[r"k=\"]),
            ("함=수,목=록", &["함=수", "목=록"]),
        ];
        for (input, want) in cases {
            assert_eq!(split_terms(input), *want, "{input}");
        }
    }

    #[test]
    fn split_term_like_upstream() {
        // upstream TestSplitTerm
        assert_eq!(
            split_term("a=value"),
            Some(("a", Operator::Equals, "value"))
        );
        assert_eq!(
            split_term("b==value"),
            Some(("b", Operator::Equals, "value"))
        );
        assert_eq!(
            split_term("c!=value"),
            Some(("c", Operator::NotEquals, "value"))
        );
        assert_eq!(split_term(""), None);
        assert_eq!(split_term("a"), None);
        assert_eq!(split_term(r"k=\,"), Some(("k", Operator::Equals, r"\,")));
        assert_eq!(
            split_term(r"k=\\\a\b\=\,\"),
            Some(("k", Operator::Equals, r"\\\a\b\=\,\"))
        );
        assert_eq!(split_term("함=수"), Some(("함", Operator::Equals, "수")));
        assert_eq!(split_term("a!b=c"), Some(("a!b", Operator::Equals, "c")));
    }

    #[test]
    fn escape_round_trips_and_bad_escapes_fail() {
        // upstream TestEscapeValue
        for (raw, escaped) in [
            ("", ""),
            ("a", "a"),
            ("=", r"\="),
            (",", r"\,"),
            (r"\", r"\\"),
            (r"\=\,\", r"\\\=\\\,\\"),
        ] {
            assert_eq!(escape_value(raw), escaped);
            assert_eq!(unescape_value(escaped).unwrap(), raw);
        }
        for bad in [r"\", r"\\\", r"\a", r"\!"] {
            assert!(
                matches!(
                    unescape_value(bad),
                    Err(FieldSelectorError::InvalidEscapeSequence(_))
                ),
                "{bad}"
            );
        }
        assert_eq!(
            unescape_value(r"\a").unwrap_err().to_string(),
            r"invalid field selector: invalid escape sequence: \a"
        );
        assert_eq!(
            unescape_value("a,b").unwrap_err().to_string(),
            "invalid field selector: unescaped character in value: 44"
        );
        assert_eq!(
            unescape_value("a=b").unwrap_err().to_string(),
            "invalid field selector: unescaped character in value: 61"
        );
    }

    #[test]
    fn parse_and_restring() {
        // upstream TestSelectorParse
        for s in ["x=a", "x=a,y=b,z=c", "", "x!=a,y=b"] {
            assert_eq!(parse(s).to_string(), s);
        }
        for s in [
            "x=a||y=b",
            "x==a==b",
            "x=a,b",
            "x in (a)",
            "x in (a,b,c)",
            "x",
        ] {
            assert!(Selector::parse(s).is_err(), "{s}");
        }
        assert_eq!(parse("x=a,a=x").to_string(), parse("a=x,x=a").to_string());
        assert_eq!(parse("x==a").to_string(), "x=a");
        assert_eq!(parse(r"x=a\,b").to_string(), r"x=a\,b");
        assert_eq!(parse(r"x=a\,b").requirements()[0].value, "a,b");
        assert_eq!(parse(",x=a,").to_string(), "x=a");
    }

    #[test]
    fn error_messages_match_upstream() {
        assert_eq!(
            Selector::parse("x").unwrap_err().to_string(),
            "invalid selector: 'x'; can't understand 'x'"
        );
        assert_eq!(
            Selector::parse("a=b,x in (a,b)").unwrap_err().to_string(),
            "invalid selector: 'a=b,x in (a,b)'; can't understand 'b)'"
        );
        assert_eq!(
            Selector::parse("x=a,b").unwrap_err().to_string(),
            "invalid selector: 'x=a,b'; can't understand 'b'"
        );
        assert_eq!(
            Selector::parse("x==a==b").unwrap_err().to_string(),
            "invalid field selector: unescaped character in value: 61"
        );
    }

    #[test]
    fn matching_like_upstream() {
        // upstream TestSelectorMatches
        assert!(parse("").matches(&set(&[("x", "y")])));
        assert!(parse("x=y").matches(&set(&[("x", "y")])));
        assert!(parse("x=y,z=w").matches(&set(&[("x", "y"), ("z", "w")])));
        assert!(parse("x!=y,z!=w").matches(&set(&[("x", "z"), ("z", "a")])));
        assert!(parse("notin=in").matches(&set(&[("notin", "in")])));
        assert!(!parse("x=y").matches(&set(&[("x", "z")])));
        assert!(!parse("x=y,z=w").matches(&set(&[("x", "w"), ("z", "w")])));
        assert!(!parse("x!=y,z!=w").matches(&set(&[("x", "z"), ("z", "w")])));
        let fields = set(&[("foo", "bar"), ("baz", "blah"), ("complex", r"=value\,\")]);
        assert!(parse("foo=bar,baz=blah").matches(&fields));
        assert!(parse(r"complex=\=value\\\,\\").matches(&fields));
        assert!(!parse("foo=bar,foobar=bar,baz=blah").matches(&fields));
        // a missing field reads as "": `x=` matches, `x!=` does not
        assert!(parse("x=").matches(&set(&[])));
        assert!(!parse("x!=").matches(&set(&[])));
    }

    #[test]
    fn requirements_exact_match_and_constructors() {
        let s = parse("spec.nodeName=n1,status.phase!=Running");
        assert_eq!(
            s.requirements(),
            [
                Requirement {
                    operator: Operator::Equals,
                    field: "spec.nodeName".into(),
                    value: "n1".into()
                },
                Requirement {
                    operator: Operator::NotEquals,
                    field: "status.phase".into(),
                    value: "Running".into()
                },
            ]
        );
        assert_eq!(s.requires_exact_match("spec.nodeName"), Some("n1"));
        assert_eq!(s.requires_exact_match("status.phase"), None);
        assert_eq!(parse("test=").requires_exact_match("test"), Some(""));
        assert!(Selector::everything().is_empty());
        assert!(!Selector::one_term_equal("a", "b").is_empty());
        assert!(Selector::one_term_equal("x", "y").matches(&set(&[("x", "y")])));
        assert!(!Selector::one_term_not_equal("x", "y").matches(&set(&[("x", "y")])));
        let from = Selector::from_set(&set(&[("b", "2"), ("a", "=")]));
        assert_eq!(from.to_string(), r"a=\=,b=2");
        let both = Selector::and([
            Selector::one_term_equal("a", "1"),
            Selector::one_term_not_equal("b", "2"),
        ]);
        assert_eq!(both.to_string(), "a=1,b!=2");
    }

    #[test]
    fn transform_rewrites_terms() {
        // upstream TestTransform: map field names, fail on unsupported ones
        let s = Selector::parse_and_transform("a=b,x=y", |f, v| {
            Ok::<_, FieldSelectorError>((format!("metadata.{f}"), v.to_uppercase()))
        })
        .unwrap();
        assert_eq!(s.to_string(), "metadata.a=B,metadata.x=Y");
        let err = parse("bad=1")
            .transform(|f, _| Err::<(String, String), _>(format!("field {f} not supported")));
        assert_eq!(err.unwrap_err(), "field bad not supported");
    }
}
