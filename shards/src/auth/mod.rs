//! Digest authentication (RFC 7616 / RFC 3261 22): challenges, verification, nonces.
