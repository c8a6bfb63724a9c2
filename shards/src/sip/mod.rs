//! SIP message parsing and serialization (sans-IO, zero-copy, lazy).
//!
//! # Parsing
//!
//! [`Message::parse`] borrows a datagram and, in one pass, finds the start line,
//! every header's name and value boundaries (up to [`MAX_HEADERS`], stored inline)
//! and the body (Content-Length framing; without Content-Length the body is the rest
//! of the datagram; bytes after the body are ignored). Nothing else is parsed until
//! asked: [`Message::top_via`], [`Message::cseq`], [`Message::from`],
//! [`Message::request_uri`], ... parse their header on each call and borrow the
//! datagram. Header names are case-insensitive and compact forms (`v`, `i`, `l`,
//! ...) map to the same [`HeaderName`]; looking up a known header is O(1). Folded
//! values are unfolded by the text accessors ([`Message::header`],
//! [`Message::header_values`]: `Cow`, borrowed when not folded) and are parsed in
//! place by the typed ones. Typed accessors check the syntax of what they parse;
//! [`Message::from_tag`] / [`Message::to_tag`] are the cheap path for dialog
//! matching (they only look for the tag).
//!
//! Over a stream (TCP/TLS) the caller frames first: Content-Length is mandatory
//! there (RFC 3261 18.3): a message whose [`Message::content_length`] is `None`, or
//! for which `check` reports [`ErrorKind::ContentLength`] because the body has not
//! fully arrived, must wait for more bytes or be rejected; [`Message::len`] says
//! where the next message starts.
//!
//! # What to do with a bad message: 400 or drop
//!
//! ```text
//! let msg = match Message::parse(datagram) {
//!     Ok(m) => m,
//!     Err(e) => return drop_and_count(e),          // not even a SIP message
//! };
//! if let Err(e) = msg.check() {
//!     match e.status() {
//!         Some(code) => {                            // 400, or 505 for SIP/7.0
//!             let mut w = Writer::response_to(&mut out, &msg, code, None, Some(tag), Some(src));
//!             w.header("Warning", ..e..);            // e's Display says what is wrong
//!             w.finish(b"");
//!         }
//!         None => drop_and_count(e),                 // a response, an ACK, or no usable Via
//!     }
//! }
//! ```
//!
//! * `parse` fails only when the message cannot be answered at all: empty (a
//!   keep-alive), a start line that is neither a request nor a status line (bad
//!   status code, not `SIP/x.y`), more than 64 headers, headers not UTF-8.
//! * Everything else (Content-Length wrong, missing or repeated headers, malformed
//!   values, CSeq/method mismatch, extra spaces in the request line, SIP version
//!   other than 2.0) is found by [`Message::check`]. Its error's
//!   [`ParseError::status`] is `Some(400)` / `Some(505)` when a response can be formed
//!   (a request other than ACK with a usable top Via) and `None` when the
//!   message must be dropped (responses, ACK, unusable Via).
//!   [`Writer::response_to`] copies whatever From/To/Call-ID/CSeq exist, so a 400
//!   can be built even for a request missing some of them.
//!
//! # Serializing
//!
//! [`Writer`] writes into a reusable `Vec<u8>`: [`Writer::response_to`] (status
//! line + copied Vias with `received`/`rport` stamped on the top one, From, To with
//! the tag added, Call-ID, CSeq), [`Writer::request`], [`Writer::header`],
//! [`Writer::finish`] (always writes Content-Length). [`Via::response_dest`] says
//! where a response goes (RFC 3261 18.2.2, RFC 3581).

pub(crate) mod build;
mod check;
mod error;
mod fields;
mod header;
mod message;
mod method;
mod name_addr;
mod params;
pub(crate) mod scan;
mod syntax;
mod uri;
mod via;

#[cfg(test)]
mod tests;

pub use build::{reason_phrase, response_head, write_head_only, write_request, Writer};
pub use error::{ErrorKind, ParseError};
pub use fields::{parse_delta_seconds, parse_max_forwards, CSeq, MediaType, SipDate};
pub use header::HeaderName;
pub use message::{Header, Message, StartLine, MAX_HEADERS};
pub use method::Method;
pub use name_addr::{Contact, NameAddr};
pub use params::{Param, ParamIter, Params};
pub use syntax::{escape_user, is_dialable_user, unescape, unfold, unquote};
pub use uri::{Host, Scheme, Uri};
pub use via::{ResponseDest, Transport, Via, MAGIC_COOKIE};

/// Whether a header name is Content-Length (full or compact, any case):
/// the one header a stream transport must read before parsing.
pub(crate) fn is_content_length_name(name: &[u8]) -> bool {
    HeaderName::ContentLength.id() == Some(header::classify(name))
}
