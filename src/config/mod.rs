//! Configuration: loading, validation and perf profiles.
