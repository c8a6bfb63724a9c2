//! SIP transactions (RFC 3261 section 17): sans-IO client and server state machines.
