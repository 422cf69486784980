//! The route table: which path serves which route, prefix applied, each
//! path with and without its trailing slash.

use super::{Action, Route, RoutePaths};
use crate::contact::Channels;

/// The OTP paths, each with and without its trailing slash, prefix applied.
#[derive(Debug, Clone)]
pub(crate) struct RouteTable {
    entries: Vec<(String, Route)>,
    /// Bit `n` set when some entry is `n` bytes long (bit 63: 63 or more):
    /// most passthrough paths are turned away on their length alone.
    lengths: u64,
}

#[inline]
fn length_bit(len: usize) -> u64 {
    1 << len.min(63)
}

impl RouteTable {
    /// The routes of the `channels` served (a channel turned off has no
    /// routes: its paths pass through), and the email link routes when
    /// `links` is on.
    pub(crate) fn new(paths: &RoutePaths, channels: Channels, links: bool) -> Self {
        let prefix = paths.prefix.trim_end_matches('/');
        let mut entries = Vec::with_capacity(2 * Route::ALL.len());
        let is_link = |r: &Route| matches!(r.action, Action::Link | Action::Cancel);
        for route in Route::ALL
            .into_iter()
            .filter(|r| channels.contains(r.channel))
            .filter(|r| links || !is_link(r))
        {
            let bare = format!("{prefix}{}", route.path(paths).trim_end_matches('/'));
            entries.push((format!("{bare}/"), route));
            entries.push((bare, route));
        }
        let lengths = entries
            .iter()
            .fold(0, |bits, (path, _)| bits | length_bit(path.len()));
        Self { entries, lengths }
    }

    /// A table that serves no path (the gate-only layer).
    pub(crate) fn empty() -> Self {
        Self {
            entries: Vec::new(),
            lengths: 0,
        }
    }

    /// Every path and its route.
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&str, Route)> {
        self.entries.iter().map(|(p, r)| (p.as_str(), *r))
    }

    /// The route served at `path`, if any.
    #[inline]
    pub(crate) fn find(&self, path: &str) -> Option<Route> {
        if self.lengths & length_bit(path.len()) == 0 {
            return None;
        }
        self.entries
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, route)| *route)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contact::Channel;

    #[test]
    fn finds_each_path_with_and_without_slash_whatever_its_length() {
        let send_email = Route::new(Action::Send, Channel::Email);
        let verify_mobile = Route::new(Action::Verify, Channel::Mobile);
        for prefix in ["", "/api", &format!("/{}", "long".repeat(20))] {
            let table = RouteTable::new(
                &RoutePaths {
                    prefix: prefix.to_owned(),
                    ..RoutePaths::default()
                },
                Channels::BOTH,
                false,
            );
            assert_eq!(table.find(&format!("{prefix}/send-otp/")), Some(send_email));
            assert_eq!(table.find(&format!("{prefix}/send-otp")), Some(send_email));
            assert_eq!(
                table.find(&format!("{prefix}/verify-mobile-otp")),
                Some(verify_mobile)
            );
            // Same length as an OTP path, or longer than 63 bytes: compared in full.
            assert_eq!(table.find(&format!("{prefix}/send-otx/")), None);
            assert_eq!(
                table.find(&format!("{prefix}/send-otp/{}", "x".repeat(70))),
                None
            );
            assert_eq!(table.find("/"), None);
        }
    }

    #[test]
    fn a_channel_turned_off_has_no_routes() {
        let table = RouteTable::new(&RoutePaths::default(), Channels::EMAIL, false);
        assert!(table.find("/send-otp/").is_some());
        assert_eq!(table.find("/send-mobile-otp/"), None);
        assert_eq!(table.find("/verify-mobile-otp"), None);
        assert_eq!(table.find("/otp/link/"), None, "links are off");
        let with_links = RouteTable::new(&RoutePaths::default(), Channels::EMAIL, true);
        assert_eq!(
            with_links.find("/otp/link"),
            Some(Route::new(Action::Link, Channel::Email))
        );
        assert_eq!(
            with_links.find("/otp/cancel/"),
            Some(Route::new(Action::Cancel, Channel::Email))
        );
    }
}
