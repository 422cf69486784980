//! The small HTML pages of the link routes: no outside resource, no
//! JavaScript, never cached, never framed, no referrer.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

use super::Kind;

/// The pages' Content-Security-Policy: nothing loads; only inline style;
/// forms post back to this origin; no framing.
pub(crate) const PAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
                            frame-ancestors 'none'; base-uri 'none'";

const STYLE: &str = "body{margin:0;background:#f4f5f7;font-family:-apple-system,BlinkMacSystemFont,\
'Segoe UI',Roboto,Helvetica,Arial,sans-serif;color:#1f2933}main{max-width:420px;margin:48px auto;\
background:#fff;border-radius:8px;padding:32px}h1{font-size:20px;margin:0 0 16px}p{font-size:15px;\
line-height:1.5}button{font-size:16px;padding:12px 20px;border:0;border-radius:6px;background:#1f6feb;\
color:#fff;cursor:pointer}button.danger{background:#c62828}";

/// Escapes text for HTML content and double-quoted attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn document(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n<title>{title}</title>\n\
         <style>{STYLE}</style>\n</head>\n<body>\n<main>\n<h1>{title}</h1>\n{body}\n</main>\n</body>\n</html>\n",
        title = escape(title),
    )
}

/// An HTML response with the pages' security headers.
pub(crate) fn html(status: StatusCode, html: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(html)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The confirm page: one button that POSTs the token (field `t`) to
/// `action` (the link's path, no query string).
pub(crate) fn confirm(kind: Kind, app_name: &str, action: &str, token: &str) -> String {
    let (title, text, button, class) = match kind {
        Kind::SignIn => (
            format!("Sign in to {app_name}"),
            "Press the button to finish signing in on this device.",
            "Sign in",
            "",
        ),
        Kind::Cancel => (
            "This wasn't me".to_owned(),
            "Someone asked for a sign-in code for your address. Press the button to cancel \
             that code and stop further codes to this address for a while.",
            "Cancel the code",
            " class=\"danger\"",
        ),
    };
    document(
        &title,
        &format!(
            "<p>{text}</p>\n<form method=\"post\" action=\"{action}\">\n\
             <input type=\"hidden\" name=\"t\" value=\"{token}\">\n\
             <button type=\"submit\"{class}>{button}</button>\n</form>",
            action = escape(action),
            token = escape(token),
        ),
    )
}

/// A page with a title and one paragraph.
pub(crate) fn message(title: &str, text: &str) -> String {
    document(title, &format!("<p>{}</p>", escape(text)))
}

/// The page of a link that cannot be used (used, replaced, expired or
/// malformed).
pub(crate) fn invalid_link() -> String {
    message(
        "This link can no longer be used",
        "It was already used, a newer code replaced it, it expired, or it is incomplete. \
         Ask for a new code, or type the code from the email.",
    )
}

/// The page of a sign-in link opened in another browser than the one that
/// asked for the code (same-device option).
pub(crate) fn wrong_device() -> String {
    message(
        "Type the code instead",
        "This link works only in the browser where you asked for the code. Type the code \
         from the email on that page instead.",
    )
}

/// The page after a cancel.
pub(crate) fn cancelled(block_minutes: u64) -> String {
    message(
        "Code cancelled",
        &format!(
            "The code was cancelled. No new code will be sent to this address for \
             {block_minutes} minute{}. You can close this page.",
            if block_minutes == 1 { "" } else { "s" }
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_and_load_nothing() {
        let page = confirm(Kind::SignIn, "<Shop>", "/otp/link/", "abc\"<x>");
        assert!(page.contains("Sign in to &lt;Shop&gt;"));
        assert!(page.contains("value=\"abc&quot;&lt;x&gt;\""));
        assert!(!page.contains("<script") && !page.contains("src=") && !page.contains("href="));
        assert!(page.contains("action=\"/otp/link/\""));
    }
}
