//! The canonical 44-byte WAV header of our recordings (8 kHz, stereo,
//! 16-bit PCM) and the repair of files whose header was not patched before
//! a crash.

use std::fs::OpenOptions;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Header length; the PCM data starts here.
pub const HEADER_LEN: u64 = 44;
/// Bytes per stereo 16-bit frame.
pub const FRAME_BYTES: u64 = 4;
/// Largest data size a RIFF header can describe, in whole frames.
pub const MAX_DATA_LEN: u64 = (u32::MAX as u64 - 36) / FRAME_BYTES * FRAME_BYTES;
/// Offset of the RIFF chunk size.
pub(crate) const RIFF_SIZE_OFFSET: u64 = 4;
/// Offset of the data chunk size.
pub(crate) const DATA_SIZE_OFFSET: u64 = 40;

const SAMPLE_RATE: u32 = 8000;
const CHANNELS: u16 = 2;
const BITS: u16 = 16;

/// The header of a file holding `data_len` bytes of PCM.
pub fn header(data_len: u32) -> [u8; 44] {
    let data_len = data_len.min(MAX_DATA_LEN as u32);
    let block_align = CHANNELS * BITS / 8;
    let mut h = [0u8; 44];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&(36 + data_len).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes()); // PCM
    h[22..24].copy_from_slice(&CHANNELS.to_le_bytes());
    h[24..28].copy_from_slice(&SAMPLE_RATE.to_le_bytes());
    h[28..32].copy_from_slice(&(SAMPLE_RATE * u32::from(block_align)).to_le_bytes());
    h[32..34].copy_from_slice(&block_align.to_le_bytes());
    h[34..36].copy_from_slice(&BITS.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_len.to_le_bytes());
    h
}

/// Writes the two size fields of the header for `data_len` bytes of PCM.
pub(crate) fn patch_sizes(file: &std::fs::File, data_len: u32) -> io::Result<()> {
    let data_len = data_len.min(MAX_DATA_LEN as u32);
    file.write_all_at(&(36 + data_len).to_le_bytes(), RIFF_SIZE_OFFSET)?;
    file.write_all_at(&data_len.to_le_bytes(), DATA_SIZE_OFFSET)
}

/// Makes the header of a recording agree with its length: a file left by a
/// crash has a header covering its last flushed second only. The data is
/// cut to whole frames. Returns whether anything was changed. A file that
/// is not one of our WAV files is an `InvalidData` error and left alone.
pub fn repair(path: &Path) -> io::Result<bool> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let len = file.metadata()?.len();
    let mut head = Vec::with_capacity(HEADER_LEN as usize);
    (&mut file).take(HEADER_LEN).read_to_end(&mut head)?;
    let canonical = header(0);
    if head.len() < HEADER_LEN as usize {
        // Crashed while writing the header itself (what is there must be a
        // prefix of it): make it an empty recording.
        if !canonical.starts_with(&head) {
            return Err(not_ours(path));
        }
        file.write_all_at(&canonical, 0)?;
        file.sync_data()?;
        return Ok(true);
    }
    // Everything but the two size fields must be our canonical header.
    let fixed_ranges = [0..4, 8..40];
    if fixed_ranges
        .iter()
        .any(|r| head[r.clone()] != canonical[r.clone()])
    {
        return Err(not_ours(path));
    }
    // Whole frames only; a header cannot describe more than MAX_DATA_LEN
    // (the writer never goes beyond it), anything past that is kept as is.
    let whole = len.saturating_sub(HEADER_LEN) / FRAME_BYTES * FRAME_BYTES;
    let data_len = whole.min(MAX_DATA_LEN) as u32;
    if head[..] == header(data_len)[..] && len == HEADER_LEN + whole {
        return Ok(false);
    }
    if len != HEADER_LEN + whole {
        file.set_len(HEADER_LEN + whole)?;
    }
    patch_sizes(&file, data_len)?;
    file.sync_data()?;
    Ok(true)
}

fn not_ours(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{} is not a recording WAV file", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_bytes() {
        let h = header(32_000);
        let expect: [u8; 44] = [
            b'R', b'I', b'F', b'F', 0x24, 0x7D, 0x00, 0x00, // 36 + 32000 = 32036
            b'W', b'A', b'V', b'E', b'f', b'm', b't', b' ', //
            16, 0, 0, 0, 1, 0, 2, 0, // fmt size 16, PCM, 2 channels
            0x40, 0x1F, 0, 0, // 8000 Hz
            0x00, 0x7D, 0, 0, // 32000 bytes/s
            4, 0, 16, 0, // block align 4, 16 bits
            b'd', b'a', b't', b'a', 0x00, 0x7D, 0x00, 0x00, // 32000 bytes
        ];
        assert_eq!(h, expect);
        let h0 = header(0);
        assert_eq!(&h0[4..8], &36u32.to_le_bytes());
        assert_eq!(&h0[40..44], &[0, 0, 0, 0]);
        // Sizes saturate instead of wrapping.
        let big = header(u32::MAX);
        assert_eq!(
            u32::from_le_bytes([big[4], big[5], big[6], big[7]]),
            36 + MAX_DATA_LEN as u32
        );
        assert_eq!(
            u32::from_le_bytes([big[40], big[41], big[42], big[43]]),
            MAX_DATA_LEN as u32
        );
    }

    #[test]
    fn repair_fixes_unpatched_and_partial_frames() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.wav");
        let data: Vec<u8> = (0..4002u32).map(|i| (i % 251) as u8).collect();
        let mut bytes = header(0).to_vec();
        bytes.extend_from_slice(&data);
        std::fs::write(&path, &bytes).expect("write");

        assert!(repair(&path).expect("repair"));
        let fixed = std::fs::read(&path).expect("read");
        assert_eq!(fixed.len(), 44 + 4000, "cut to whole frames");
        assert_eq!(fixed[..44], header(4000));
        assert_eq!(fixed[44..], data[..4000]);
        // A good file is left alone.
        assert!(!repair(&path).expect("repair again"));
        assert_eq!(std::fs::read(&path).expect("read"), fixed);

        // A header claiming more than the file holds is fixed too.
        let mut over = header(100_000).to_vec();
        over.extend_from_slice(&data[..400]);
        std::fs::write(&path, &over).expect("write");
        assert!(repair(&path).expect("repair"));
        assert_eq!(std::fs::read(&path).expect("read")[..44], header(400));

        // Crash inside the header: becomes an empty recording.
        std::fs::write(&path, &header(0)[..10]).expect("write");
        assert!(repair(&path).expect("repair"));
        assert_eq!(std::fs::read(&path).expect("read"), header(0));

        // Someone else's file is refused and untouched.
        let other = dir.path().join("b.wav");
        std::fs::write(&other, vec![7u8; 100]).expect("write");
        let err = repair(&other).expect_err("not ours");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(std::fs::read(&other).expect("read"), vec![7u8; 100]);
    }
}
