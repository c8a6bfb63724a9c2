//! Call recording: decoders for the payloads we record, the stereo mixer a
//! shard feeds with relayed packets, and the WAV writer that runs off the
//! shard on the control core.
//!
//! Flow: the shard owns one [`Recorder`] per recorded call, feeds it every
//! relayed packet ([`Recorder::on_packet`]), polls [`Recorder::take_ready`]
//! every few hundred milliseconds and sends the bytes as [`RecCmd::Append`]
//! to the single writer thread ([`spawn_writer`]); the writer owns the files.
//!
//! - Only packets whose payload type maps to a [`Codec`] are fed; DTMF/CN
//!   packets are simply not passed (their sequence numbers are skipped).
//! - The file's size for the CDR is `wav::HEADER_LEN + bytes_emitted()`
//!   after [`Recorder::finish`] (barring write errors, which are logged).
//! - [`repair_dir`] runs once at start-up, before the writer opens files.

mod codec;
mod mixer;
pub mod wav;
mod writer;

pub use codec::{Codec, Decoder};
pub use mixer::{Channel, Recorder, RecorderStats, RtpIn};
pub use writer::{recording_path, repair_dir, spawn_writer, RecCmd};

/// Errors of the recording module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordingError {
    /// The decoder for a codec could not be created.
    DecoderInit { codec: Codec, reason: String },
}

impl std::fmt::Display for RecordingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordingError::DecoderInit { codec, reason } => {
                write!(f, "cannot create {codec} decoder: {reason}")
            }
        }
    }
}

impl std::error::Error for RecordingError {}
