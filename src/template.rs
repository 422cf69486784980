//! Message templates (minijinja, HTML autoescaping).
//!
//! Built-in templates are compiled into the crate from `templates/`:
//!
//! | name | files |
//! |---|---|
//! | email `otp` | `email/otp.subject.txt`, `email/otp.html`, `email/otp.txt` |
//! | email `welcome` | `email/welcome.subject.txt`, `.html`, `.txt` (`name`, `action_url`) |
//! | email `reset` | `email/reset.subject.txt`, `.html`, `.txt` (`reset_url`, `ttl_minutes`, `name`) |
//! | email `document` | `email/document.subject.txt`, `.html`, `.txt` (`document_name`, `message`, `name`) |
//! | email `default` | `email/default.subject.txt`, `.html`, `.txt` (`subject`, `heading`, `message`, `action_url`, `action_label`) |
//! | SMS `otp` | `sms/otp.txt` |
//!
//! Every email extends `email/base.html` and receives `app_name`.
//!
//! An email template `NAME` is the subject `email/NAME.subject.txt`, the HTML
//! part `email/NAME.html` and, optionally, the plain-text part
//! `email/NAME.txt`; without one, the text part is derived from the HTML.
//! An SMS template `NAME` is `sms/NAME.txt`.
//!
//! A host overrides any of them, or adds its own, with a folder laid out the
//! same way ([`Templates::with_overrides`]); files there win over built-ins.
//! `.html` files are autoescaped; subjects and `.txt` files are not.

use std::path::Path;

use minijinja::Environment;
use serde::Serialize;

use crate::{error::ConfigError, language::Languages};

macro_rules! builtin {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../templates/", $name)))),*]
    };
}

/// Every built-in template: (name, source).
const BUILTINS: &[(&str, &str)] = builtin![
    "email/base.html",
    "email/otp.subject.txt",
    "email/otp.html",
    "email/otp.txt",
    "email/welcome.subject.txt",
    "email/welcome.html",
    "email/welcome.txt",
    "email/reset.subject.txt",
    "email/reset.html",
    "email/reset.txt",
    "email/document.subject.txt",
    "email/document.html",
    "email/document.txt",
    "email/default.subject.txt",
    "email/default.html",
    "email/default.txt",
    "sms/otp.txt",
];

/// The languages with built-in templates, English (the root files) first.
pub const BUILTIN_LANGUAGES: &[&str] = &["en", "hi", "es", "fr", "de", "pt"];

macro_rules! translations {
    ($($lang:literal),* $(,)?) => {
        &[$(translations!(@one $lang)),*]
    };
    (@one $lang:literal) => {
        translations!(@files $lang;
            "email/base.html",
            "email/otp.subject.txt", "email/otp.html", "email/otp.txt",
            "email/welcome.subject.txt", "email/welcome.html", "email/welcome.txt",
            "email/reset.subject.txt", "email/reset.html", "email/reset.txt",
            "email/document.subject.txt", "email/document.html", "email/document.txt",
            "email/default.subject.txt", "email/default.html", "email/default.txt",
            "sms/otp.txt",
        )
    };
    (@files $lang:literal; $($file:literal),* $(,)?) => {
        [$((
            concat!($lang, "/", $file),
            include_str!(concat!("../templates/", $lang, "/", $file)),
        )),*]
    };
}

/// The built-in translations: `<lang>/email/...`, `<lang>/sms/...`.
const TRANSLATIONS: &[[(&str, &str); 17]] = translations!["hi", "es", "fr", "de", "pt"];

/// The language templates fall back to (the root files).
pub const DEFAULT_LANGUAGE: &str = "en";

/// A rendered email: subject, HTML and plain-text parts.
#[derive(Clone, PartialEq, Eq)]
pub struct RenderedEmail {
    /// The subject line (one line, trimmed).
    pub subject: String,
    /// The HTML part.
    pub html: String,
    /// The plain-text part.
    pub text: String,
    /// The language it was rendered in (`en`, `fr`, ...): the email's
    /// `Content-Language`.
    pub language: String,
}

impl std::fmt::Debug for RenderedEmail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderedEmail")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// A template failed to render (a missing template or a syntax error).
#[derive(Debug, thiserror::Error)]
#[error("template {name} failed: {source}")]
pub struct TemplateError {
    name: String,
    #[source]
    source: minijinja::Error,
}

/// The template set: built-ins plus the host's overrides.
#[derive(Debug, Clone)]
#[doc(hidden)] // no public API takes it; kept public for the crate's own tests
pub struct Templates {
    env: Environment<'static>,
    /// The templates the host's folder gave (overrides and additions).
    from_host: std::collections::HashSet<String>,
}

impl Default for Templates {
    fn default() -> Self {
        Self::builtin()
    }
}

impl Templates {
    /// Only the built-in templates.
    pub fn builtin() -> Self {
        let mut env = Environment::new();
        for (name, source) in BUILTINS.iter().chain(TRANSLATIONS.iter().flatten()) {
            env.add_template(name, source)
                .expect("built-in templates are valid");
        }
        Self {
            env,
            from_host: std::collections::HashSet::new(),
        }
    }

    /// The built-ins, overridden and extended by every file under `dir`
    /// (e.g. `dir/email/otp.html`). Files are read once, now.
    pub fn with_overrides(dir: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let mut templates = Self::builtin();
        let dir = dir.as_ref();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(folder) = pending.pop() {
            let entries = std::fs::read_dir(&folder).map_err(|e| ConfigError::Backend {
                what: "templates folder",
                source: Box::new(e),
            })?;
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    pending.push(path);
                    continue;
                }
                let Ok(relative) = path.strip_prefix(dir) else {
                    continue;
                };
                let name = relative.to_string_lossy().replace('\\', "/");
                let source = std::fs::read_to_string(&path).map_err(|e| ConfigError::Backend {
                    what: "template file",
                    source: Box::new(e),
                })?;
                templates
                    .env
                    .add_template_owned(name.clone(), source)
                    .map_err(|e| ConfigError::invalid("templates", format!("{name}: {e}")))?;
                templates.from_host.insert(name);
            }
        }
        Ok(templates)
    }

    /// Whether an email template `name` exists.
    pub fn has_email(&self, name: &str) -> bool {
        self.env.get_template(&format!("email/{name}.html")).is_ok()
    }

    /// Renders email template `name` with `context`, in English.
    pub fn render_email<C: Serialize>(
        &self,
        name: &str,
        context: C,
    ) -> Result<RenderedEmail, TemplateError> {
        self.render_email_in(name, &Languages::none(), context)
    }

    /// The language `file` (e.g. `email/otp.html`) is rendered in for
    /// `languages`: the first tag of the fallback chain with that file,
    /// else [`DEFAULT_LANGUAGE`].
    pub fn language_for(&self, file: &str, languages: &Languages) -> String {
        languages
            .fallback_chain()
            .find(|lang| self.env.get_template(&localized(lang, file)).is_ok())
            .unwrap_or(DEFAULT_LANGUAGE)
            .to_owned()
    }

    /// Renders email template `name` in the first of `languages` that has
    /// it (its HTML part decides; a missing subject or text part of that
    /// language falls back along the chain, and a text part is derived from
    /// the HTML). The context gets `lang`; [`RenderedEmail::language`] says
    /// which was used.
    pub fn render_email_in<C: Serialize>(
        &self,
        name: &str,
        languages: &Languages,
        context: C,
    ) -> Result<RenderedEmail, TemplateError> {
        let html_file = format!("email/{name}.html");
        let lang = self.language_for(&html_file, languages);
        let context = minijinja::context! {
            ..minijinja::context! { lang => lang },
            ..minijinja::Value::from_serialize(&context)
        };
        let same = Languages::from_tag(&lang);
        let subject_file = format!("email/{name}.subject.txt");
        let subject_lang = self.language_for(&subject_file, &same);
        let subject = self.render(&localized(&subject_lang, &subject_file), &context)?;
        let html = self.render(&localized(&lang, &html_file), &context)?;
        let text_file = localized(&lang, &format!("email/{name}.txt"));
        let text = if self.env.get_template(&text_file).is_ok() {
            self.render(&text_file, &context)?
        } else {
            html_to_text(&html)
        };
        Ok(RenderedEmail {
            subject: subject.lines().next().unwrap_or_default().trim().to_owned(),
            html,
            text,
            language: lang,
        })
    }

    /// Renders SMS template `name` with `context`, in English.
    pub fn render_sms<C: Serialize>(
        &self,
        name: &str,
        context: C,
    ) -> Result<String, TemplateError> {
        self.render_sms_in(name, &Languages::none(), context)
    }

    /// Renders SMS template `name` in the first of `languages` that has it.
    pub fn render_sms_in<C: Serialize>(
        &self,
        name: &str,
        languages: &Languages,
        context: C,
    ) -> Result<String, TemplateError> {
        let file = format!("sms/{name}.txt");
        let lang = self.language_for(&file, languages);
        let context = minijinja::context! {
            ..minijinja::context! { lang => lang },
            ..minijinja::Value::from_serialize(&context)
        };
        Ok(self
            .render(&localized(&lang, &file), &context)?
            .trim()
            .to_owned())
    }

    /// Whether the SMS template `name` in `language` is a built-in
    /// translation (not English, not from the host's folder).
    pub fn is_builtin_translation(&self, name: &str, language: &str) -> bool {
        let file = localized(language, &format!("sms/{name}.txt"));
        language != DEFAULT_LANGUAGE && !self.from_host.contains(&file)
    }

    /// Every language with an SMS template `name` (the default first).
    pub fn sms_languages(&self, name: &str) -> Vec<String> {
        let suffix = format!("/sms/{name}.txt");
        let mut langs = vec![DEFAULT_LANGUAGE.to_owned()];
        for (template, _) in self.env.templates() {
            if let Some(lang) = template.strip_suffix(&suffix)
                && !lang.contains('/')
                && !langs.iter().any(|l| l == lang)
            {
                langs.push(lang.to_owned());
            }
        }
        langs
    }

    fn render(&self, name: &str, context: &minijinja::Value) -> Result<String, TemplateError> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(context))
            .map_err(|source| TemplateError {
                name: name.to_owned(),
                source,
            })
    }
}

/// The template name of `file` in `lang` (English is the root files).
fn localized(lang: &str, file: &str) -> String {
    if lang == DEFAULT_LANGUAGE {
        file.to_owned()
    } else {
        format!("{lang}/{file}")
    }
}

/// A readable plain-text form of an HTML body: tags dropped, block ends as
/// line breaks, entities decoded, blank runs collapsed.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut rest = html;
    let mut skip_until: Option<&str> = None;
    while let Some(start) = rest.find('<') {
        if skip_until.is_none() {
            out.push_str(&rest[..start]);
        }
        let Some(end) = rest[start..].find('>') else {
            rest = "";
            break;
        };
        let tag = rest[start + 1..start + end].trim().to_ascii_lowercase();
        let tag_name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        match skip_until {
            Some(closing) if tag == closing => skip_until = None,
            Some(_) => {}
            None if tag_name == "style" || tag_name == "script" || tag_name == "head" => {
                if !tag.starts_with('/') {
                    skip_until = Some(match tag_name.as_str() {
                        "style" => "/style",
                        "script" => "/script",
                        _ => "/head",
                    });
                }
            }
            None => {
                if matches!(
                    tag_name.as_str(),
                    "br" | "p" | "div" | "tr" | "h1" | "h2" | "h3" | "h4" | "li" | "table"
                ) {
                    out.push('\n');
                }
            }
        }
        rest = &rest[start + end + 1..];
    }
    if skip_until.is_none() {
        out.push_str(rest);
    }
    let decoded = out
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&#x2f;", "/")
        .replace("&amp;", "&");
    let mut text = String::new();
    let mut blank = 0;
    for line in decoded.lines().map(str::trim) {
        if line.is_empty() {
            blank += 1;
            if blank == 1 && !text.is_empty() {
                text.push('\n');
            }
        } else {
            blank = 0;
            text.push_str(line);
            text.push('\n');
        }
    }
    text.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builtin_otp_email_has_the_code_in_both_parts_and_escapes_html() {
        let t = Templates::builtin();
        let email = t
            .render_email(
                "otp",
                json!({"code": "123456", "app_name": "<b>Shop</b>", "ttl_minutes": 5}),
            )
            .unwrap();
        assert!(email.html.contains("123456") && email.text.contains("123456"));
        // minijinja also escapes `/` (as `&#x2f;`).
        assert!(email.html.contains("&lt;b&gt;Shop&lt;"), "{}", email.html);
        assert!(!email.html.contains("<b>Shop"));
        assert!(!email.subject.is_empty() && !email.subject.contains('\n'));
    }

    #[test]
    fn every_builtin_email_renders_with_its_context_escaped_in_html() {
        let t = Templates::builtin();
        let evil = "<script>x</script>";
        let cases = [
            (
                "welcome",
                json!({"app_name": "Shop", "name": evil, "action_url": "https://shop.example/start"}),
                "Welcome to Shop",
            ),
            (
                "reset",
                json!({"app_name": "Shop", "name": evil, "reset_url": "https://shop.example/reset?t=1&u=2", "ttl_minutes": 30}),
                "Reset your Shop password",
            ),
            (
                "document",
                json!({"app_name": "Shop", "name": evil, "document_name": "Invoice 42"}),
                "Invoice 42 from Shop",
            ),
            (
                "default",
                json!({"app_name": "Shop", "message": evil, "subject": "Hello"}),
                "Hello",
            ),
        ];
        for (name, context, subject) in cases {
            assert!(t.has_email(name), "{name}");
            let email = t.render_email(name, &context).unwrap();
            assert_eq!(email.subject, subject, "{name}");
            assert!(
                email.html.contains("&lt;script&gt;"),
                "{name}: {}",
                email.html
            );
            assert!(!email.html.contains(evil), "{name}");
            // The plain-text part is not HTML: no escaping there.
            assert!(email.text.contains(evil), "{name}: {}", email.text);
            assert!(
                email.html.contains("<!DOCTYPE html>"),
                "{name} extends base.html"
            );
        }
        let reset = t
            .render_email("reset", json!({"app_name": "Shop", "reset_url": "https://shop.example/r?a=1&b=2", "ttl_minutes": 30}))
            .unwrap();
        assert!(reset.text.contains("https://shop.example/r?a=1&b=2"));
        assert!(reset.html.contains("r?a=1&amp;b=2") && !reset.html.contains("a=1&b=2"));
        assert!(reset.text.contains("30 minutes"));
        let fallback = t
            .render_email("default", json!({"app_name": "Shop", "message": "Hi"}))
            .unwrap();
        assert_eq!(fallback.subject, "A message from Shop");
    }

    /// A fresh, empty folder under the system temp dir.
    fn temp_dir(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "tower-otp-{tag}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        ));
        std::fs::create_dir_all(dir.join("email")).unwrap();
        dir
    }

    #[test]
    fn a_folder_overrides_builtins_and_adds_templates() {
        let dir = temp_dir("templates");
        std::fs::write(dir.join("email/otp.subject.txt"), "Code for {{ app_name }}").unwrap();
        std::fs::write(
            dir.join("email/otp.html"),
            "{% extends \"email/base.html\" %}{% block content %}<p>CODE={{ code }}</p>{% endblock %}",
        )
        .unwrap();
        std::fs::write(
            dir.join("email/invoice.subject.txt"),
            "Invoice {{ number }}",
        )
        .unwrap();
        std::fs::write(dir.join("email/invoice.html"), "<p>Total: {{ total }}</p>").unwrap();
        let t = Templates::with_overrides(&dir).unwrap();

        let otp = t
            .render_email(
                "otp",
                json!({"code": "123456", "app_name": "Shop", "ttl_minutes": 5}),
            )
            .unwrap();
        assert_eq!(otp.subject, "Code for Shop");
        assert!(otp.html.contains("<p>CODE=123456</p>"), "{}", otp.html);
        // The built-in otp.txt is not overridden, so it still gives the text part.
        assert!(
            otp.text.contains("Your Shop verification code is: 123456"),
            "{}",
            otp.text
        );

        assert!(t.has_email("invoice"));
        let invoice = t
            .render_email("invoice", json!({"number": 7, "total": "<42 €>"}))
            .unwrap();
        assert_eq!(invoice.subject, "Invoice 7");
        assert_eq!(invoice.html, "<p>Total: &lt;42 €&gt;</p>");
        assert_eq!(invoice.text, "Total: <42 €>", "text derived from the HTML");

        // Built-ins stay untouched for other users.
        let builtin = Templates::builtin()
            .render_email(
                "otp",
                json!({"code": "123456", "app_name": "Shop", "ttl_minutes": 5}),
            )
            .unwrap();
        assert_eq!(builtin.subject, "Your Shop verification code");
        assert!(!Templates::builtin().has_email("invoice"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn html_is_turned_into_readable_text() {
        let text = html_to_text(
            "<html><head><style>p{}</style></head><body><p>Hi &amp; welcome</p><p>Line<br>two</p></body></html>",
        );
        assert_eq!(text, "Hi & welcome\n\nLine\ntwo");
    }
}
