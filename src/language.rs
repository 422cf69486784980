//! Which language a reader wants: the request's `"locale"` field, then its
//! `Accept-Language` header (RFC 9110 q-values), best first.
//!
//! A [`Languages`] list is only a preference: the templates decide what is
//! available, trying each tag and then its shorter forms (`pt-br`, `pt`)
//! before the next preference, and English last.

use http::{HeaderMap, header};

/// Tags kept from one request (a header with hundreds of entries is cut).
const MAX_TAGS: usize = 8;
/// The longest tag considered (`zh-Hant-TW` is 10; RFC 5646 allows more,
/// but no template folder needs it).
const MAX_TAG_LEN: usize = 35;

/// Language tags, best first, lower-cased (`pt-br`).
///
/// ```
/// use tower_otp::Languages;
///
/// let prefs = Languages::from_accept_language("fr-CH, fr;q=0.9, en;q=0.8, *;q=0.5");
/// assert_eq!(prefs.tags(), ["fr-ch", "fr", "en"]);
/// assert_eq!(Languages::from_tag("pt_BR").tags(), ["pt-br"]);
/// assert!(Languages::from_tag("../../etc").tags().is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Languages(Vec<String>);

impl Languages {
    /// No preference: the default language.
    pub fn none() -> Self {
        Self::default()
    }

    /// One language (`"fr"`, `"pt-BR"`, `"pt_BR"`); an invalid tag gives
    /// no preference.
    pub fn from_tag(tag: &str) -> Self {
        Self(normalize(tag).into_iter().collect())
    }

    /// The languages of an `Accept-Language` value, by q-value (ties keep
    /// their order); `*`, `q=0` and malformed entries are skipped.
    pub fn from_accept_language(value: &str) -> Self {
        let mut ranked: Vec<(u16, String)> = Vec::new();
        for item in value.split(',') {
            let mut parts = item.split(';');
            let tag = parts.next().unwrap_or_default().trim();
            let q = parts
                .filter_map(|p| p.trim().split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .map_or(Some(1000), |(_, v)| crate::error::parse_q(v.trim()));
            let (Some(q), Some(tag)) = (q, normalize(tag)) else {
                continue;
            };
            if q > 0 && !ranked.iter().any(|(_, t)| *t == tag) {
                ranked.push((q, tag));
            }
            if ranked.len() == MAX_TAGS {
                break;
            }
        }
        ranked.sort_by_key(|(q, _)| std::cmp::Reverse(*q));
        Self(ranked.into_iter().map(|(_, tag)| tag).collect())
    }

    /// A request's preference: its `"locale"` (when valid) first, then its
    /// `Accept-Language`.
    pub fn for_request(locale: Option<&str>, headers: &HeaderMap) -> Self {
        let mut prefs = locale.map(Self::from_tag).unwrap_or_default();
        for value in headers.get_all(header::ACCEPT_LANGUAGE) {
            if let Ok(value) = value.to_str() {
                for tag in Self::from_accept_language(value).0 {
                    if prefs.0.len() < MAX_TAGS && !prefs.0.contains(&tag) {
                        prefs.0.push(tag);
                    }
                }
            }
        }
        prefs
    }

    /// The tags, best first.
    pub fn tags(&self) -> &[String] {
        &self.0
    }

    /// Every tag to try, best first: each tag, then its shorter forms
    /// (`pt-br`, `pt`).
    pub(crate) fn fallback_chain(&self) -> impl Iterator<Item = &str> {
        self.0.iter().flat_map(|tag| {
            let mut cuts: Vec<&str> = vec![tag.as_str()];
            let mut rest = tag.as_str();
            while let Some((head, _)) = rest.rsplit_once('-') {
                cuts.push(head);
                rest = head;
            }
            cuts
        })
    }
}

impl From<&str> for Languages {
    /// One language tag ([`Languages::from_tag`]).
    fn from(tag: &str) -> Self {
        Self::from_tag(tag)
    }
}

impl From<String> for Languages {
    /// One language tag ([`Languages::from_tag`]), e.g. a user's stored
    /// preference: `notifier.email("welcome").language(user.locale)`.
    fn from(tag: String) -> Self {
        Self::from_tag(&tag)
    }
}

impl From<&String> for Languages {
    /// One language tag ([`Languages::from_tag`]), borrowed:
    /// `.language(&user.locale)`.
    fn from(tag: &String) -> Self {
        Self::from_tag(tag)
    }
}

/// A well-formed tag, lower-cased with `-` (`pt_BR` → `pt-br`); `None` for
/// `*` and anything that is not letters and digits in `-`-separated
/// subtags of 1 to 8 characters starting with 2 or 3 letters.
fn normalize(tag: &str) -> Option<String> {
    let tag = tag.trim().replace('_', "-").to_ascii_lowercase();
    if tag.is_empty() || tag.len() > MAX_TAG_LEN {
        return None;
    }
    let mut subtags = tag.split('-');
    let primary = subtags.next()?;
    if !(2..=3).contains(&primary.len()) || !primary.bytes().all(|b| b.is_ascii_lowercase()) {
        return None;
    }
    if !subtags.all(|s| (1..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        return None;
    }
    Some(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_values_order_the_tags() {
        let prefs = Languages::from_accept_language("de;q=0.5, hi, es;q=0.9, xx;q=0, fr;q=abc");
        assert_eq!(prefs.tags(), ["hi", "es", "de"]);
        assert!(Languages::from_accept_language("").tags().is_empty());
        assert!(Languages::from_accept_language("*").tags().is_empty());
    }

    #[test]
    fn the_chain_tries_shorter_forms_before_the_next_preference() {
        let prefs = Languages::from_accept_language("pt-BR, es-419;q=0.8");
        let chain: Vec<&str> = prefs.fallback_chain().collect();
        assert_eq!(chain, ["pt-br", "pt", "es-419", "es"]);
    }

    #[test]
    fn a_string_converts_like_a_str() {
        let owned = String::from("pt_BR");
        assert_eq!(Languages::from(&owned).tags(), ["pt-br"]);
        assert_eq!(Languages::from(owned), Languages::from("pt_BR"));
        assert!(Languages::from(String::from("../x")).tags().is_empty());
        // What `Notifier::language` takes.
        fn takes(languages: impl Into<Languages>) -> Languages {
            languages.into()
        }
        let locale = String::from("fr-CH");
        assert_eq!(takes(&locale).tags(), ["fr-ch"]);
        assert_eq!(takes(locale).tags(), ["fr-ch"]);
    }

    #[test]
    fn the_locale_field_comes_first_and_bad_tags_are_ignored() {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_LANGUAGE, "fr, en;q=0.5".parse().unwrap());
        let prefs = Languages::for_request(Some("hi-IN"), &headers);
        assert_eq!(prefs.tags(), ["hi-in", "fr", "en"]);
        let prefs = Languages::for_request(Some("<script>"), &headers);
        assert_eq!(prefs.tags(), ["fr", "en"]);
        for bad in ["", "e", "english-language", "../x", "fr--ch", "x1"] {
            assert!(Languages::from_tag(bad).tags().is_empty(), "{bad}");
        }
    }
}
