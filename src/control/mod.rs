//! The control core: plain threads outside the shards that may block. The
//! store writer, the HTTP listener (metrics now; REST and AMI later).

pub mod http;
pub mod writer;
