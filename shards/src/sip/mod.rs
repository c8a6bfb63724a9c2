//! SIP message parsing and serialization (sans-IO, zero-copy, lazy).
