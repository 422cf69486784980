//! The end of an SMS code message, for phones that fill the code in by
//! themselves, and the check that every SMS template fits one segment.
//!
//! - **WebOTP / Apple's domain-bound codes**: a last line `@<host> #<code>`
//!   lets the browser or iOS offer the code to that site only. When the
//!   page asking for the code runs in a frame inside another site's page,
//!   the embedded host follows the code as a second `@` field:
//!   `@<top-level-host> #<code> @<embedded-host>` (`webotp_host` is then
//!   the site in the address bar, `webotp_embedded_host` the framed page's
//!   host), as the WICG "origin-bound one-time codes" format and Chrome
//!   (since 91) read it. An early draft of that format used
//!   `%<embedded-host>` (Apple's developer page still shows it); Chrome
//!   does not read it.
//! - **Android SMS Retriever**: an 11-character app hash in the message lets
//!   the app read the code without the SMS permission. The message must
//!   then be at most 140 bytes.
//!
//! These lines are added by the crate after the template is rendered, so
//! every language and every host template gets them right.
//!
//! At start-up every SMS template (built-in and the host's, in every
//! language) is rendered with a code of the configured length: over one
//! segment (160 GSM-7 characters, or 70 UCS-2 characters when the text
//! needs Unicode) is a warning, since each extra segment is billed; over
//! 140 bytes with an app hash is an error, since Android would not read
//! the code. Every built-in translation fits 140 bytes with the hash for
//! app names of up to 9 characters (`tower-otp`), 8-digit codes and
//! expiries of up to 99 minutes (Portuguese is written without the accents
//! GSM-7 lacks, as Brazilian banks do; Hindi needs UCS-2, 70 characters,
//! and is the tightest: a WebOTP line as well, about 27 more characters,
//! does not fit it). A built-in translation that does not fit only warns
//! (the host may not serve that language): override it in the templates
//! folder if Android users read it.

use crate::error::ConfigError;

/// One SMS segment: GSM-7 septets, UCS-2 (UTF-16) units.
const GSM7_SEGMENT: usize = 160;
const UCS2_SEGMENT: usize = 70;
/// The largest message SMS Retriever reads.
const RETRIEVER_MAX_BYTES: usize = 140;

/// What the crate appends to SMS codes.
#[derive(Debug, Clone, Default)]
pub(crate) struct SmsText {
    pub(crate) webotp_host: Option<String>,
    pub(crate) embedded_host: Option<String>,
    pub(crate) app_hash: Option<String>,
}

impl SmsText {
    /// Checks the settings (host names, the app hash's shape).
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        for (name, host) in [
            ("webotp_host", &self.webotp_host),
            ("webotp_embedded_host", &self.embedded_host),
        ] {
            if let Some(host) = host
                && !is_host(host)
            {
                return Err(ConfigError::invalid(
                    name,
                    "must be a host name (with an optional :port), without scheme or path",
                ));
            }
        }
        if self.embedded_host.is_some() && self.webotp_host.is_none() {
            return Err(ConfigError::invalid(
                "webotp_embedded_host",
                "needs a WebOTP host (`webotp_host`)",
            ));
        }
        if let Some(hash) = &self.app_hash
            && !(hash.len() == 11
                && hash
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/'))
        {
            return Err(ConfigError::invalid(
                "android_app_hash",
                "must be the 11-character SMS Retriever hash of the app (letters, digits, + and /)",
            ));
        }
        Ok(())
    }

    /// `body` with the app hash and the WebOTP line appended.
    pub(crate) fn finish(&self, body: String, code: &str) -> String {
        let mut text = body;
        if let Some(hash) = &self.app_hash {
            text.push_str("\n\n");
            text.push_str(hash);
        }
        if let Some(host) = &self.webotp_host {
            text.push_str(if self.app_hash.is_some() {
                "\n"
            } else {
                "\n\n"
            });
            text.push('@');
            text.push_str(host);
            text.push_str(" #");
            text.push_str(code);
            if let Some(embedded) = &self.embedded_host {
                text.push_str(" @");
                text.push_str(embedded);
            }
        }
        text
    }

    /// Checks one rendered message (`language` names it in the messages):
    /// `Ok(Some(warning))` over one segment, `Err` over 140 bytes with an
    /// app hash.
    pub(crate) fn check(&self, language: &str, text: &str) -> Result<Option<String>, ConfigError> {
        let size = Size::of(text);
        if self.app_hash.is_some() && size.bytes > RETRIEVER_MAX_BYTES {
            return Err(ConfigError::invalid(
                "android_app_hash",
                format!(
                    "the {language} SMS template makes a {}-byte message; SMS Retriever reads \
                     at most {RETRIEVER_MAX_BYTES}: shorten the template",
                    size.bytes
                ),
            ));
        }
        Ok((size.segments > 1).then(|| {
            format!(
                "the {language} SMS template makes a {}-segment message ({} {} characters; one \
                 segment holds {}): each segment is billed",
                size.segments,
                size.units,
                if size.unicode { "UCS-2" } else { "GSM-7" },
                if size.unicode {
                    UCS2_SEGMENT
                } else {
                    GSM7_SEGMENT
                },
            )
        }))
    }
}

/// How an SMS text is encoded and billed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Size {
    /// Needs UCS-2 (a character outside the GSM-7 alphabet).
    pub(crate) unicode: bool,
    /// GSM-7 septets or UTF-16 units.
    pub(crate) units: usize,
    /// Bytes on the air (140 per segment).
    pub(crate) bytes: usize,
    /// Segments billed (concatenated segments hold 153 / 67).
    pub(crate) segments: usize,
}

impl Size {
    pub(crate) fn of(text: &str) -> Self {
        let septets: Option<usize> = text.chars().map(gsm7_septets).sum();
        match septets {
            Some(units) => Self {
                unicode: false,
                units,
                bytes: (units * 7).div_ceil(8),
                segments: if units <= GSM7_SEGMENT {
                    1
                } else {
                    units.div_ceil(153)
                },
            },
            None => {
                let units = text.encode_utf16().count();
                Self {
                    unicode: true,
                    units,
                    bytes: units * 2,
                    segments: if units <= UCS2_SEGMENT {
                        1
                    } else {
                        units.div_ceil(67)
                    },
                }
            }
        }
    }
}

/// Septets of `c` in the GSM 03.38 alphabet (2 for the extension table),
/// `None` outside it.
fn gsm7_septets(c: char) -> Option<usize> {
    const BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?\
                         ¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
    const EXTENSION: &str = "\u{c}^{}\\[~]|€";
    if BASIC.contains(c) {
        Some(1)
    } else if EXTENSION.contains(c) {
        Some(2)
    } else {
        None
    }
}

fn is_host(host: &str) -> bool {
    let (name, port) = host
        .rsplit_once(':')
        .map_or((host, None), |(n, p)| (n, Some(p)));
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
        && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lines_follow_the_body() {
        let text = SmsText {
            webotp_host: Some("app.example.com".into()),
            embedded_host: Some("shop.example".into()),
            app_hash: Some("FA+9qCX9VSu".into()),
        };
        text.validate().unwrap();
        assert_eq!(
            text.finish("123456 is your code.".into(), "123456"),
            "123456 is your code.\n\nFA+9qCX9VSu\n@app.example.com #123456 @shop.example"
        );
        let plain = SmsText {
            webotp_host: Some("app.example.com".into()),
            ..SmsText::default()
        };
        assert_eq!(
            plain.finish("Code 1".into(), "1"),
            "Code 1\n\n@app.example.com #1"
        );
        assert_eq!(SmsText::default().finish("Code".into(), "1"), "Code");
    }

    #[test]
    fn bad_settings_are_refused() {
        for (hash, ok) in [
            ("FA+9qCX9VSu", true),
            ("short", false),
            ("FA+9qCX9VS!", false),
        ] {
            let text = SmsText {
                app_hash: Some(hash.into()),
                ..SmsText::default()
            };
            assert_eq!(text.validate().is_ok(), ok, "{hash}");
        }
        for (host, ok) in [
            ("app.example.com", true),
            ("localhost:8443", true),
            ("https://app.example.com", false),
            ("app.example.com/path", false),
            ("a b", false),
        ] {
            let text = SmsText {
                webotp_host: Some(host.into()),
                ..SmsText::default()
            };
            assert_eq!(text.validate().is_ok(), ok, "{host}");
        }
    }

    #[test]
    fn sizes_follow_gsm7_and_ucs2() {
        assert_eq!(Size::of(&"a".repeat(160)).segments, 1);
        assert_eq!(Size::of(&"a".repeat(161)).segments, 2);
        // Extension characters count twice.
        assert_eq!(Size::of(&"€".repeat(80)).units, 160);
        let hindi = Size::of("आपका कोड");
        assert!(hindi.unicode);
        assert_eq!(hindi.bytes, 16);
        assert!(!Size::of(&"é".repeat(70)).unicode);
        assert_eq!(Size::of(&"ç".repeat(71)).segments, 2);
        let text = SmsText {
            app_hash: Some("FA+9qCX9VSu".into()),
            ..SmsText::default()
        };
        assert!(text.check("en", &"a".repeat(160)).unwrap().is_none());
        assert!(text.check("en", &"a".repeat(161)).is_err());
        assert!(
            SmsText::default()
                .check("en", &"a".repeat(161))
                .unwrap()
                .is_some()
        );
    }
}
