//! Who calls: the caller's From user and the user who authenticated, as
//! the rest of the endpoint reads them. One place for the rule that an
//! INVITE which reached routing without a trunk's source and with digest
//! credentials carries the user those credentials proved.

use crate::transport::Peer;

use super::targets::dialled;
use super::SipEndpoint;
use crate::auth::{credentials_for_realm, Credentials};
use crate::sip::{HeaderName, Message};

/// The From URI's user, %-decoded; None when absent or not UTF-8.
pub(super) fn caller_user(msg: &Message<'_>) -> Option<String> {
    let from = msg.from().ok()?;
    let user = from.uri.user_unescaped()?;
    String::from_utf8(user.into_owned()).ok()
}

impl SipEndpoint {
    /// The user whose credentials an admitted INVITE carries: None for a
    /// call from a trunk's inbound hosts (no digest) or a guest's. Only
    /// meaningful once the INVITE passed `on_invite` (the digest was
    /// verified there).
    pub(super) fn authenticated_user(&self, msg: &Message<'_>, src: Peer) -> Option<String> {
        if self.routing.trunks.for_source(src.addr).is_some() {
            return None;
        }
        let (host, _) = dialled(msg);
        let realm = self.settings.realm_for(&host);
        let values: Vec<_> = msg.header_values(HeaderName::ProxyAuthorization).collect();
        let value = credentials_for_realm(values.iter().map(std::convert::AsRef::as_ref), realm)?;
        match crate::auth::parse_credentials(value).ok()? {
            Credentials::Digest(d) => Some(d.username),
            Credentials::Other { .. } => None,
        }
    }
}
